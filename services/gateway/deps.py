"""Dependency aliases, so route signatures read on their own (`settings: SettingsDep`)."""

from __future__ import annotations

from typing import Annotated

import redis.asyncio as aioredis
from fastapi import Depends, HTTPException, Request, status

from cityscreen.settings import Settings
from services.gateway import auth
from services.gateway.hub import Hub
from services.gateway.metrics import GatewayMetrics


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_redis(request: Request) -> aioredis.Redis:
    client: aioredis.Redis = request.app.state.redis
    return client


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def get_metrics(request: Request) -> GatewayMetrics:
    metrics: GatewayMetrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[aioredis.Redis, Depends(get_redis)]
MetricsDep = Annotated[GatewayMetrics, Depends(get_metrics)]


def require_operator(request: Request, settings: SettingsDep, metrics: MetricsDep) -> str:
    token = auth.bearer_token(request.headers.get("authorization"))
    if auth.is_valid_token(token, settings.gateway.operator_tokens):
        assert token is not None  # a valid token is never None
        return token
    metrics.http_unauthorized.inc()
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="missing or unknown operator token: send 'Authorization: Bearer <token>'",
        headers={"WWW-Authenticate": "Bearer"},
    )


OperatorDep = Annotated[str, Depends(require_operator)]
