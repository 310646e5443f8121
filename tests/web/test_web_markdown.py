"""Markdown is rendered safely: user text and model output can never become live markup."""
import pytest
from web_client import ask, new_conversation, stream, web  # noqa: F401  (web is a fixture)
from web_checks import elements, live_markup

from blueprints.web.markdown import ALLOWED_ATTRIBUTES, ALLOWED_CLASSES, ALLOWED_TAGS, plain_text, render_markdown

ATTACKS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    '<div hx-get="/x" hx-trigger="load">y</div>',
    '<a href="javascript:alert(1)">click</a>',
    "[y](JaVaScRiPt:alert(1)) ![i](data:text/html;base64,PHNjcmlwdD4=)",
    '<svg onload=alert(1)></svg> <style>*{}</style> <iframe src="https://evil.example"></iframe>',
    "```\n</code></pre><script>alert(1)</script>\n```",
    '```html" onmouseover="alert(1)\n<b>x</b>\n```',
    "```python\n'</span><script>alert(1)</script>'\n```",
    "- [x] <input type=text onfocus=alert(1) autofocus> [ ] y",
    "| a | <img src=x onerror=alert(1)> |\n|---|---|\n| [z](javascript:alert(1)) | `</td><script>` |",
]

EXTRA_ATTRIBUTES = {"a": {"rel"}, "input": {"type", "disabled"}}      # set by the sanitiser itself


@pytest.mark.parametrize("typed", [False, True])
@pytest.mark.parametrize("attack", ATTACKS)
def test_rendering_function_leaves_attacks_inert(attack, typed):
    html = str(render_markdown(attack, typed))
    assert live_markup(html) == []
    for tag, attrs in elements(html):
        assert tag in ALLOWED_TAGS
        allowed = set(ALLOWED_ATTRIBUTES.get(tag, ())) | EXTRA_ATTRIBUTES.get(tag, set())
        if tag in ALLOWED_CLASSES:
            allowed.add("class")
        assert set(attrs) <= allowed, (tag, attrs)
        assert set((attrs.get("class") or "").split()) <= ALLOWED_CLASSES.get(tag, set())
        if tag == "input":
            assert (attrs["type"], attrs["disabled"]) == ("checkbox", "disabled")


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


def test_gfm_tables_task_lists_and_strikethrough():
    html = str(render_markdown("| model | price |\n|---|--:|\n| m1 | 0.5 |\n\n- [x] done\n- [ ] todo\n\n~~old~~ new"))
    assert "<table>" in html and "<th>model</th>" in html and "<td>0.5</td>" in html
    assert 'style=' not in html                     # alignment would need inline style, which the CSP refuses
    boxes = [attrs for tag, attrs in elements(html) if tag == "input"]
    assert len(boxes) == 2 and "checked" in boxes[0] and "checked" not in boxes[1]
    assert "<s>old</s> new" in html


def test_code_is_highlighted_on_the_server():
    html = str(render_markdown("```python\ndef f():\n    return 'x < y'\n```\n\n```nosuchlanguage\na < b\n```"))
    assert '<pre class="highlight"><code><span class="k">def</span>' in html
    assert '<span class="s1">&#39;x &lt; y&#39;</span>' in html or "<span class=\"s1\">'x &lt; y'</span>" in html
    assert '<pre class="highlight"><code>a &lt; b\n</code></pre>' in html           # unknown language: plain


def test_titles_are_plain_text():
    assert plain_text("**Hello** `there` [site](https://example.com) <b>x</b>") == "Hello there site <b>x</b>"


def test_a_typed_question_keeps_its_line_breaks_and_a_model_answer_follows_gfm():
    assert "<p>one<br>\ntwo</p>" in str(render_markdown("one\ntwo", typed=True))
    assert "<p>one\ntwo</p>" in str(render_markdown("one\ntwo"))
