"""``GET /api/knowledge/search``: the knowledge chunks closest to a query, for a UI or an agent
that retrieves on its own. The search (its embeddings call and the store) runs in a worker
thread; knowledge is imported on the first search only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from . import schema
from .deps import Caller, State, json_response
from .errors import ApiError

router = APIRouter()
MAX_QUERY_CHARS = 10_000


_OPERATION = schema.operation(
    "Knowledge chunks closest to a query", "the chunks, best first", 400, 401, 502, 503
)
# k is read from the query string and checked here (a bad value is a 400 naming it, as on
# every route); the schema says what is accepted
_OPERATION["openapi_extra"]["parameters"] = [
    {
        "name": "k",
        "in": "query",
        "required": False,
        "description": "how many chunks, 1 to 100 (default knowledge.top_k)",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
    }
]


@router.get("/api/knowledge/search", **_OPERATION)
async def search(
    request: Request,
    state: State,
    owner: Caller,
    query: Annotated[str, Query(description="what to look for")] = "",
    source: Annotated[list[str] | None, Query(description="only these sources")] = None,
) -> Any:
    from ..errors import AiAssistantError
    from ..knowledge import KnowledgeError
    from ..knowledge.search import hit_dict, knowledge_of

    if not query.strip():
        raise ApiError(400, "'query' must not be empty", param="query")
    if len(query) > MAX_QUERY_CHARS:
        raise ApiError(400, f"'query' is longer than {MAX_QUERY_CHARS} characters", param="query")
    count = None
    k = request.query_params.get("k")
    if k is not None:
        if not k.strip().isdigit() or not 1 <= int(k) <= 100:
            raise ApiError(400, "'k' must be a whole number from 1 to 100", param="k")
        count = int(k)
    redact = state.host.config.redact
    try:
        hits = await knowledge_of(state.host).asearch(query, count, source or ())
    except KnowledgeError as exc:
        message = str(exc) + (f"; {exc.hint}" if exc.hint else "")
        raise ApiError(400, redact(message), param="query") from None
    except AiAssistantError as exc:  # the embeddings model or the store is not available
        raise ApiError(
            503, redact(str(exc)), "service_unavailable", "knowledge_unavailable"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the embeddings provider failed
        raise ApiError(
            502, redact(f"the knowledge search failed: {type(exc).__name__}: {exc}"), "api_error"
        ) from None
    return json_response({"query": query, "results": [hit_dict(h) for h in hits]})
