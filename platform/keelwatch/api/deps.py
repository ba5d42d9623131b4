"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from keelwatch.wiring import Services

DEFAULT_API_ACTOR = "api"


def get_services(request: Request) -> Services:
    """The process-wide :class:`Services` built by ``create_app``."""
    services: Services = request.app.state.services
    return services


def get_actor(
    x_keelwatch_actor: Annotated[str | None, Header()] = None,
) -> str:
    """Who performs a mutating call, for the audit log (header ``X-Keelwatch-Actor``)."""
    return (x_keelwatch_actor or "").strip() or DEFAULT_API_ACTOR


ServicesDep = Annotated[Services, Depends(get_services)]
ActorDep = Annotated[str, Depends(get_actor)]
