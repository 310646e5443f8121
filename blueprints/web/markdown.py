"""Safe markdown for chat messages: model output and user text must never become live markup.

Two layers, because either alone has failed somewhere before: markdown-it with raw HTML off
(so `<script>` stays text), then nh3 with a small tag allow-list, few attributes (classes only
from fixed sets; no `style`, which the CSP refuses anyway, so table alignment is dropped) and
http/https/mailto as the only link schemes (so `javascript:` links, event handlers and `hx-*`
attributes cannot survive even if the parser or the highlighter lets something through).
GFM tables, strikethrough and task lists as people expect from ChatGPT; fenced code is highlighted here with Pygments (CSS classes, styled in app.css), so the page
needs no highlighting script; app.js adds a copy button to each block.
"""
import html

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup
from mdit_py_plugins.tasklists import tasklists_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

ALLOWED_TAGS = frozenset({
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "s", "del", "table", "thead", "tbody", "tr", "th", "td", "span", "input",
})
ALLOWED_ATTRIBUTES = {"a": {"href"}, "input": {"checked"}}
ALLOWED_CLASSES = {
    "span": frozenset(c for c in STANDARD_TYPES.values() if c),
    "pre": frozenset({"highlight"}),
    "ul": frozenset({"contains-task-list"}),
    "li": frozenset({"task-list-item"}),
    "input": frozenset({"task-list-item-checkbox"}),
}
# A task-list box is always a disabled checkbox, whatever the text said.
FORCED_ATTRIBUTES = {"input": {"type": "checkbox", "disabled": "disabled"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
_FORMATTER = HtmlFormatter(nowrap=True)


def _highlighted(code, language, _attrs):
    """A fenced block as Pygments spans inside <pre class="highlight">; unknown languages stay plain."""
    try:
        lexer = get_lexer_by_name(language.strip()) if language.strip() else None
    except ClassNotFound:
        lexer = None
    body = highlight(code, lexer, _FORMATTER) if lexer else html.escape(code)
    return f'<pre class="highlight"><code>{body}</code></pre>'


def _markdown(breaks):
    return (MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": breaks,
                                      "highlight": _highlighted})
            .enable(["table", "strikethrough"]).use(tasklists_plugin))


_parser = _markdown(breaks=False)
_typed_parser = _markdown(breaks=True)        # a user's own question keeps the lines they typed (Shift+Enter)


def render_markdown(text, typed=False):
    """Markdown → sanitised HTML, marked safe for Jinja only after both layers ran.

    `typed`: text a person typed, whose single line breaks are kept (a model's are not, as in GFM)."""
    parser = _typed_parser if typed else _parser
    return Markup(nh3.clean(parser.render(text or ""), tags=set(ALLOWED_TAGS), attributes=ALLOWED_ATTRIBUTES,
                            allowed_classes=ALLOWED_CLASSES,
                            set_tag_attribute_values=FORCED_ATTRIBUTES, url_schemes=set(URL_SCHEMES),
                            link_rel="nofollow noopener noreferrer", strip_comments=True))


def plain_text(text):
    """What markdown reads as, without its marks: conversation titles show `**hi**` as `hi`."""
    return " ".join(html.unescape(nh3.clean(_parser.render(text or ""), tags=set())).split())
