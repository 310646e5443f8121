"""Test helpers for the web pages: named SSE events, and a check for markup that could run or act."""
from html.parser import HTMLParser


def named_events(raw):
    """[(event, data)] from an event-stream body; comment lines (pings) are skipped."""
    events = []
    for block in raw.decode().split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data:"):
                data.append(line[6:] if line.startswith("data: ") else line[5:])
        if data:
            events.append((name, "\n".join(data)))
    return events


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))


def elements(html):
    """Every (tag, attributes) a browser would build from `html`."""
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.elements


# The page's own markup that fetches itself: the nav's balance badge (base.html) and the chat's
# conversation search (templates/chat/index.html). Model output is sanitised down to a few bare
# tags, so it can never produce these exact elements.
PAGE_FRAGMENTS = {("span", "credit-badge", "/credits/badge"), ("input", "conversation-search", "/chat/search")}


def live_markup(html):
    """Anything in `html` that could run script or make htmx act: what the XSS tests expect to be empty."""
    found = []
    for tag, attrs in elements(html):
        if (tag, attrs.get("id"), attrs.get("hx-get")) in PAGE_FRAGMENTS:
            continue
        if tag in ("script", "img", "iframe", "object", "embed", "svg", "style") and not (
                tag == "script" and attrs.get("src", "").startswith("/static/")):
            found.append(tag)
        found += [f"{tag}[{name}]" for name in attrs if name.startswith("on")]
        found += [f"{tag}[{name}]" for name in attrs if name.startswith(("hx-get", "data-hx-get", "hx-on"))]
        found += [f"{tag}[href={v}]" for k, v in attrs.items() if k in ("href", "src", "action") and v
                  and v.strip().lower().startswith(("javascript:", "data:", "vbscript:"))]
    return found
