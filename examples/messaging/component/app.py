"""Greets and relays over wasmcloud:messaging.

- a message on any subscribed subject, say `greet` with body `world`, is answered with
  `hello, world`: to its reply subject when it has one (request/reply), else published
  on `greeted`;
- a message on `ask.<subject>` is passed on as a request to `<subject>` (1 s timeout)
  and the answer (or `error: <why>`) goes back the same way.

Which subjects reach the component is the link's business (source_config
`subscriptions`), not the component's.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import consumer
from wit_world.imports.types import BrokerMessage

ASK = "ask."
REQUEST_TIMEOUT_MS = 1000


class Handler(exports.Handler):
    def handle_message(self, msg: BrokerMessage) -> None:
        if msg.subject.startswith(ASK):
            try:
                answer = consumer.request(msg.subject[len(ASK) :], msg.body, REQUEST_TIMEOUT_MS)
                text = answer.body
            except Err as error:
                text = f"error: {error.value}".encode()
        else:
            text = b"hello, " + msg.body
        consumer.publish(BrokerMessage(msg.reply_to or "greeted", text, None))
