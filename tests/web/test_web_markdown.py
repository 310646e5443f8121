"""Markdown is rendered safely: user text and model output can never become live markup."""
import pytest
from web_client import ask, new_conversation, stream, web  # noqa: F401  (web is a fixture)
from web_checks import elements, live_markup

from blueprints.web.markdown import ALLOWED_TAGS, render_markdown

ATTACKS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    '<div hx-get="/x" hx-trigger="load">y</div>',
    '<a href="javascript:alert(1)">click</a>',
    "[y](JaVaScRiPt:alert(1)) ![i](data:text/html;base64,PHNjcmlwdD4=)",
    '<svg onload=alert(1)></svg> <style>*{}</style> <iframe src="https://evil.example"></iframe>',
    "```\n</code></pre><script>alert(1)</script>\n```",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_rendering_function_leaves_attacks_inert(attack):
    html = str(render_markdown(attack))
    assert live_markup(html) == []
    for tag, attrs in elements(html):
        assert tag in ALLOWED_TAGS
        assert set(attrs) <= ({"href", "rel"} if tag == "a" else set())


def test_markdown_still_renders_the_harmless_parts():
    html = str(render_markdown("**bold** and [site](https://example.com)\n\n```\nx < y\n```"))
    assert "<strong>bold</strong>" in html and "x &lt; y" in html
    assert '<a href="https://example.com" rel="nofollow noopener noreferrer">site</a>' in html


def test_rendered_chat_page_is_inert(app, web):
    """The demo model echoes the question, so the same text is both user input and model output."""
    alice = web("alice")
    conversation_id = new_conversation(alice)
    for attack in ATTACKS[:4]:
        events = stream(alice, ask(alice, conversation_id, attack))
        for name, data in events:
            assert live_markup(data) == [], (name, data)
    page = alice.get(f"/chat/{conversation_id}").get_data(as_text=True)
    assert live_markup(page) == []
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
