"""Safe markdown for chat messages: model output and user text must never become live markup.

Two layers, because either alone has failed somewhere before: markdown-it with raw HTML off
(so `<script>` stays text), then nh3 with a small tag allow-list, `href` as the only attribute
and http/https/mailto as the only link schemes (so `javascript:` links, event handlers and
`hx-*` attributes cannot survive even if the parser lets something through).
"""
import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

_parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})

ALLOWED_TAGS = frozenset({
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "code", "pre", "blockquote",
    "ul", "ol", "li", "a",
})
ALLOWED_ATTRIBUTES = {"a": {"href"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})


def render_markdown(text):
    """Markdown → sanitised HTML, marked safe for Jinja only after both layers ran."""
    html = _parser.render(text or "")
    return Markup(nh3.clean(html, tags=set(ALLOWED_TAGS), attributes=ALLOWED_ATTRIBUTES, url_schemes=set(URL_SCHEMES),
                            link_rel="nofollow noopener noreferrer", strip_comments=True))
