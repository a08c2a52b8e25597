async def test_status(hows_tunnel):
    reply = await hows_tunnel.request("GET", "/api/status")
    assert reply.status == 200, reply
    assert "started" in reply.json()
