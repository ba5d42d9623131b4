"""``/auth``: who the API takes the caller to be (the remote CLI's ``tokens whoami``)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from keelwatch.entities.auth import Role

router = APIRouter(prefix="/auth", tags=["auth"])


class WhoamiOut(BaseModel):
    """The authenticated caller: the audit actor its calls record, and its roles."""

    identity: str
    kind: str
    roles: list[str]


@router.get("/whoami", response_model=WhoamiOut)
def whoami(request: Request) -> WhoamiOut:
    """The caller's identity (``token:<name>``, ``oidc:<subject>`` or ``anonymous``) and roles."""
    principal = getattr(request.state, "principal", None)
    if principal is None:  # unreachable behind authorize(); never answer for nobody
        raise HTTPException(401, "authentication required: send 'Authorization: Bearer <token>'")
    return WhoamiOut(
        identity=principal.identity,
        kind=principal.kind.value,
        roles=[role.value for role in Role if role in principal.roles],  # the enum's order
    )
