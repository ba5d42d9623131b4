"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from keelwatch.wiring import Services


def get_services(request: Request) -> Services:
    """The process-wide :class:`Services` built by ``create_app``."""
    services: Services = request.app.state.services
    return services


def get_actor(request: Request) -> str:
    """Who performs a call, for the audit log: the authenticated identity (``token:<name>``,
    ``oidc:<subject>``, or ``anonymous`` with ``auth.mode = disabled``), set by the app-level
    dependency :func:`keelwatch.api.access.authorize`. No header can change it."""
    principal = getattr(request.state, "principal", None)
    if principal is None:  # an open route asking for an actor: nobody to record
        raise HTTPException(401, "authentication required: send 'Authorization: Bearer <token>'")
    identity: str = principal.identity
    return identity


ServicesDep = Annotated[Services, Depends(get_services)]
ActorDep = Annotated[str, Depends(get_actor)]
