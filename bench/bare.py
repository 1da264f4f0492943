"""The yardstick: a bare FastAPI endpoint returning a constant, served like our services."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/bare")
async def bare() -> dict[str, bool]:
    return {"ok": True}
