"""The role hierarchy: which roles a held role grants. Pure: no I/O, no frameworks.

``viewer < operator < approver < admin`` is a chain (each grants everything below it);
``reviewer`` (the moderation review queue) is a separate branch that grants ``viewer`` only,
so an operator or approver cannot review, and a reviewer cannot run jobs. ``admin`` grants
every role.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from keelwatch.entities.auth import Role
from keelwatch.errors import InvalidInputError

#: held role → every role it satisfies (itself included).
ROLE_GRANTS: Mapping[Role, frozenset[Role]] = {
    Role.VIEWER: frozenset({Role.VIEWER}),
    Role.OPERATOR: frozenset({Role.VIEWER, Role.OPERATOR}),
    Role.REVIEWER: frozenset({Role.VIEWER, Role.REVIEWER}),
    Role.APPROVER: frozenset({Role.VIEWER, Role.OPERATOR, Role.APPROVER}),
    Role.ADMIN: frozenset(Role),
}


def grants(held: Role, needed: Role) -> bool:
    """True when a principal holding ``held`` may do what needs ``needed``."""
    return needed in ROLE_GRANTS[held]


def any_grants(held: Iterable[Role], needed: Role) -> bool:
    """True when one of the roles in ``held`` grants ``needed``."""
    return any(grants(role, needed) for role in held)


def parse_role(text: str) -> Role:
    """``"operator"`` → :attr:`Role.OPERATOR`; an :class:`InvalidInputError` naming the known
    roles otherwise."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        known = ", ".join(role.value for role in Role)
        raise InvalidInputError(f"unknown role {text!r} (known: {known})") from None
