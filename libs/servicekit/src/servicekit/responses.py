"""`model_response`: a response for a route that already holds a validated model."""

from collections.abc import Mapping

from fastapi import Response
from pydantic import BaseModel


def model_response(
    model: BaseModel, *, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Serialize `model` once, in pydantic-core; FastAPI would validate a returned model again.

    Declare the model as the route's `response_model`, so the OpenAPI schema stays the same.
    """
    return Response(model.model_dump_json(), status_code, headers, media_type="application/json")
