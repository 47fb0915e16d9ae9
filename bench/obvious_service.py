"""The service a newcomer would write first, kept as the benchmark's floor.

A plain FastAPI app: a Pydantic body of ``list[list[float]]`` logits and ``list[int]`` targets,
``torch.tensor`` on the parsed lists, ``F.cross_entropy``, the value returned as JSON, one uvicorn
worker with uvicorn's defaults. No reference, no breakdown, no warnings: it does less than
loss-service, which is what makes it a fair floor for "at least 2x its throughput".

Run: ``python bench/obvious_service.py --port 8100``.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class Body(BaseModel):
    input: list[list[float]]
    target: list[int]


class Result(BaseModel):
    value: float


def create_app() -> FastAPI:
    app = FastAPI(title="obvious cross_entropy")

    @app.post("/cross_entropy")
    def cross_entropy(body: Body) -> Result:
        loss = F.cross_entropy(torch.tensor(body.input), torch.tensor(body.target))
        return Result(value=loss.item())

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
