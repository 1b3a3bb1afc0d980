# -*- test-case-name: tests.test_transport_direct_reply -*-
"""
Direct reply-to on pika (see L{novasvc.transport.amqp._direct_reply}): the
probe goes out with pika's C{basic_publish}, and comes back through the
channel's return callback.
"""

from typing import Any

import pika

from novasvc.transport.amqp._channel import Channel
from novasvc.transport.amqp._direct_reply import DirectReplyChannel, DirectReplyConsumer
from novasvc.transport.topology import DIRECT_REPLY_TO

__all__ = ["PikaDirectReplyConsumer"]


class _PikaDirectReplyChannel(DirectReplyChannel):
    def _send_probe(self, channel: Channel, routing_key: str, body: bytes) -> None:
        channel.raw.add_on_return_callback(self._returned)
        channel.raw.basic_publish("", routing_key, body, pika.BasicProperties(reply_to=DIRECT_REPLY_TO),
                                  mandatory=True)

    def _returned(self, _raw: Any, _method: Any, properties: Any, body: bytes) -> None:
        self.returned(properties.reply_to, body)


class PikaDirectReplyConsumer(DirectReplyConsumer):
    """
    A consumer of the direct reply-to pseudo-queue on the pika transport.
    """

    channel_class = _PikaDirectReplyChannel
