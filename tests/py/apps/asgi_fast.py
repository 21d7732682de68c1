"""A FastAPI app for test_asgi_frameworks.py: path/query params, a pydantic
body, a WebSocket route, lifespan-style startup state."""
from typing import List, Optional

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

app = FastAPI()
STARTED = {"startup": False}


@app.on_event("startup")
async def startup():
    STARTED["startup"] = True


class Order(BaseModel):
    name: str
    quantity: int
    tags: List[str] = []
    note: Optional[str] = None


@app.get("/__ready")
async def ready():
    return {"ready": True}


@app.get("/users/{user_id}")
async def get_user(user_id: int, verbose: bool = False, q: Optional[str] = None):
    return {"user_id": user_id, "verbose": verbose, "q": q, "startup": STARTED["startup"]}


@app.post("/orders", status_code=201)
async def create_order(order: Order):
    return {"name": order.name, "total": order.quantity * 2, "tags": order.tags, "note": order.note}


@app.websocket("/ws/{room}")
async def ws(websocket: WebSocket, room: str):
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_json()
            await websocket.send_json({"room": room, "data": data})
    except WebSocketDisconnect:
        pass
