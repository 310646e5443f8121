"""Small conversions every translating family shares (OpenAI message parts, tool arguments, chunks)."""
import json

from gateway import errors


def text_of(content):
    """The text of a message's content, whether a string or a list of parts."""
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if p.get("type") == "text")
    return content or ""


def tool_arguments(raw):
    """Tool-call arguments travel as a JSON string in OpenAI; other families want the object.

    :raise BadRequest: the arguments are not JSON.
    """
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        raise errors.BadRequest("A tool call's 'arguments' is not valid JSON.", "messages") from None
    return value if isinstance(value, dict) else {"value": value}


def split_data_url(url):
    """(media type, base64 data) of a `data:…;base64,` URL, or None for any other URL."""
    if url.startswith("data:") and ";base64," in url:
        media_type, _, data = url[5:].partition(";base64,")
        return media_type, data
    return None


def add_turn(turns, role, items, field):
    """Append a turn; a second one from the same role is merged (these families want alternation)."""
    if turns and turns[-1]["role"] == role:
        turns[-1][field] += items
    else:
        turns.append({"role": role, field: items})


def chunk(delta, finish_reason=None):
    """An OpenAI chunk body (the router adds id, model and created)."""
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


EFFORT_BUDGETS = {"none": 0, "minimal": 1024, "low": 2048, "medium": 8192, "high": 24576,
                  "xhigh": 32768}        # reasoning_effort ⇄ thinking budget (tokens)


def effort_for_budget(budget):
    """A thinking budget (tokens) as the nearest reasoning_effort that does not think less."""
    return next((effort for effort in ("minimal", "low", "medium") if budget <= EFFORT_BUDGETS[effort]), "high")


def schema_tool(response_format):
    """Structured output as one tool whose arguments are the answer: (tool name, JSON schema), or None."""
    if (response_format or {}).get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema") or {}
    return spec.get("name") or "structured_output", spec.get("schema") or {"type": "object"}
