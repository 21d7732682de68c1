"""A FastAPI app for test_install: says which interpreter serves it."""
import sys

from fastapi import FastAPI

app = FastAPI()


@app.get("/who")
async def who():
    return {"executable": sys.executable, "prefix": sys.prefix}
