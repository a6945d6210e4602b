"""SQS through boto3: long polling, the visibility timeout as the lease.

``extend`` is ChangeMessageVisibility; a dead-letter queue takes ids that were
received too often (a redrive policy, set up by :meth:`SqsQueue.ensure` in dev
and by infra/ in production).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import QueueUnavailable
from chalicelib.jobs.models import Lease
from chalicelib.queues.base import JobQueue

T = TypeVar("T")
MAX_DELAY_S = 900  # SQS limit on DelaySeconds / visibility for a nack
MAX_WAIT_S = 20  # SQS limit on long polling


def _guard(call: Callable[[], T]) -> T:
    try:
        return call()
    except (BotoCoreError, ClientError) as err:
        raise QueueUnavailable(f"the SQS queue cannot be reached: {type(err).__name__}") from err


class SqsQueue(JobQueue):
    backend = "sqs"

    def __init__(self, client: Any, *, queue_url: str, lease_s: float = 60.0) -> None:
        super().__init__(lease_s=lease_s)
        self.client = client
        self.queue_url = queue_url

    @classmethod
    def connect(cls, *, endpoint_url: str | None, region: str, access_key: str | None = None,
                secret_key: str | None = None) -> Any:
        config = Config(connect_timeout=2, read_timeout=MAX_WAIT_S + 5, retries={"max_attempts": 2})
        return boto3.client("sqs", endpoint_url=endpoint_url, region_name=region, config=config,
                            aws_access_key_id=access_key, aws_secret_access_key=secret_key)

    @classmethod
    def ensure(cls, client: Any, name: str, *, lease_s: float, max_receives: int) -> str:
        """Create the queue and its DLQ (``NAME-dlq``) when missing; returns the queue URL."""
        def run() -> str:
            dlq_url = client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
            dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
                "Attributes"]["QueueArn"]
            redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)})
            return str(client.create_queue(QueueName=name, Attributes={
                "VisibilityTimeout": str(int(lease_s)), "RedrivePolicy": redrive})["QueueUrl"])
        return _guard(run)

    @classmethod
    def lookup(cls, client: Any, name: str) -> str:
        """The URL of an existing queue; :class:`QueueUnavailable` when there is none."""
        return str(_guard(lambda: client.get_queue_url(QueueName=name))["QueueUrl"])

    def enqueue(self, job_id: str, delay_s: float = 0) -> None:
        delay = int(min(MAX_DELAY_S, max(0, delay_s)))
        _guard(lambda: self.client.send_message(QueueUrl=self.queue_url, MessageBody=job_id, DelaySeconds=delay))

    def receive(self, wait_s: float) -> Lease | None:
        reply = _guard(lambda: self.client.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=int(min(MAX_WAIT_S, max(0, wait_s))),
            VisibilityTimeout=int(self.lease_s)))
        messages = reply.get("Messages") or []
        if not messages:
            return None
        message = messages[0]
        return Lease(job_id=message["Body"], token=message["ReceiptHandle"])

    def ack(self, lease: Lease) -> bool:
        return self._settle(lambda: self.client.delete_message(QueueUrl=self.queue_url,
                                                               ReceiptHandle=lease.token))

    def nack(self, lease: Lease, delay_s: float = 0) -> bool:
        return self._visibility(lease, delay_s)

    def extend(self, lease: Lease, seconds: float) -> bool:
        return self._visibility(lease, seconds)

    def _visibility(self, lease: Lease, seconds: float) -> bool:
        timeout = int(min(MAX_DELAY_S, max(0, seconds)))
        return self._settle(lambda: self.client.change_message_visibility(
            QueueUrl=self.queue_url, ReceiptHandle=lease.token, VisibilityTimeout=timeout))

    def _settle(self, call: Callable[[], Any]) -> bool:
        try:
            call()
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if "ReceiptHandle" in code or "MessageNotInflight" in code:
                return False  # the lease expired and the message went to someone else
            raise QueueUnavailable(f"the SQS queue refused the call: {code}") from err
        except BotoCoreError as err:
            raise QueueUnavailable(f"the SQS queue cannot be reached: {type(err).__name__}") from err
        return True

    def depth(self) -> int:
        attrs = _guard(lambda: self.client.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]))["Attributes"]
        ready = int(attrs.get("ApproximateNumberOfMessages", 0))
        return ready + int(attrs.get("ApproximateNumberOfMessagesDelayed", 0))
