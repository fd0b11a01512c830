"""An S3 server for integration tests: moto's, over real HTTP on 127.0.0.1 (no MinIO server can
be installed here, and nothing may leave the machine). ``S3Server`` resets it between tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

ACCESS_KEY, SECRET_KEY, REGION = "lb-test-key", "lb-test-secret-never-shown", "us-east-1"


@dataclass
class S3Server:
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The settings localbatch takes (LOCALBATCH_S3_*) to reach this server."""
        return {
            "LOCALBATCH_S3_ENDPOINT": self.url,
            "LOCALBATCH_S3_ACCESS_KEY": ACCESS_KEY,
            "LOCALBATCH_S3_SECRET_KEY": SECRET_KEY,
            "LOCALBATCH_S3_REGION": REGION,
        }

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback only
            answer.read()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_s3_server() -> Iterator[S3Server]:
    with running_moto() as url:
        yield S3Server(int(url.rsplit(":", 1)[1]))


@contextmanager
def running_moto() -> Iterator[str]:
    """moto's server on a free loopback port (S3, and the AWS Batch peer): its URL."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@contextmanager
def authenticating_s3_server() -> Iterator[tuple[S3Server, str, str]]:
    """moto's server in a process of its own that checks credentials (IAM): the server, and a
    valid access key and secret. Its first four actions are unauthenticated, as moto allows:
    they create the user, its key, its policy and the bucket ``inbox``."""
    port = free_port()
    server_bin = Path(sys.executable).with_name("moto_server")
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"}
    process = subprocess.Popen(
        [str(server_bin), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        anyone = {"endpoint_url": url, "aws_access_key_id": "x", "aws_secret_access_key": "y", "region_name": REGION}
        iam = boto3.client("iam", **anyone)
        iam.create_user(UserName="lb")
        key = iam.create_access_key(UserName="lb")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="lb", PolicyName="all", PolicyDocument=json.dumps(policy))
        boto3.client("s3", **anyone).create_bucket(Bucket="inbox")
        yield S3Server(port), key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        process.terminate()
        process.wait(timeout=10)
