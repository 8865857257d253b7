"""The chat pages: who may open them and what they show."""

from __future__ import annotations

from httpx import AsyncClient

from tests.factories import sign_in


async def test_agents_answer_on_the_chat_page_and_analysts_may_not(
    client: AsyncClient, make_user: object
) -> None:
    agent = await make_user("agent")  # type: ignore[operator]
    await sign_in(client, agent.email)
    page = await client.get("/chat")
    assert page.status_code == 200
    assert "data-chat-desk" in page.text and "/static/chat-agent.js" in page.text
    demo = await client.get("/chat/demo")
    assert demo.status_code == 200
    assert (
        '<script src="/chat/widget.js" data-desk="http://testserver" async></script>' in demo.text
    )
    assert (await client.get("/admin/chat")).status_code == 403

    analyst = await make_user("analyst")  # type: ignore[operator]
    client.cookies.clear()
    await sign_in(client, analyst.email)
    assert (await client.get("/chat")).status_code == 403


async def test_admins_get_the_snippet_and_set_the_widget_texts(
    client: AsyncClient, make_user: object
) -> None:
    admin = await make_user("admin")  # type: ignore[operator]
    csrf = await sign_in(client, admin.email)
    page = await client.get("/admin/chat")
    assert page.status_code == 200
    assert (
        "&lt;script src=&#34;http://testserver/chat/widget.js&#34; "
        "data-desk=&#34;http://testserver&#34; async&gt;&lt;/script&gt;" in page.text
    )
    assert "SERVICECYCLE_CHAT_ALLOWED_ORIGINS" in page.text

    refused = await client.post(
        "/admin/chat", data={"csrf_token": csrf, "greeting": "", "offline_text": "Later"}
    )
    assert refused.status_code == 422 and "1-500 characters" in refused.text
    saved = await client.post(
        "/admin/chat",
        data={"csrf_token": csrf, "greeting": "Hello there!", "offline_text": "Back at 9."},
    )
    assert saved.status_code == 303
    again = await client.get("/admin/chat")
    assert "Chat texts saved." in again.text and "Hello there!" in again.text
    forged = await client.post("/admin/chat", data={"greeting": "x", "offline_text": "y"})
    assert forged.status_code == 403
