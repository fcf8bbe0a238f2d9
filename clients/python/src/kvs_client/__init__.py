"""Python client for KVS, the key-value service (REST API ``/kvs/v1-0-0``).

Modules:

- :mod:`kvs_client.protocol`: the API once, as request builders and answer
  parsers, with no I/O;
- :mod:`kvs_client.client`: :class:`Client` (blocking) and
  :class:`AsyncClient` (asyncio), thin httpx transports over the protocol;
- :mod:`kvs_client.followers`: following a follower's redirect to the
  primary, and reading your own writes (``read_your_writes=True``);
- :mod:`kvs_client.errors`: the exception hierarchy;
- :mod:`kvs_client.cli`: the ``kvs`` command line.
"""

from ._version import __version__
from .client import DEFAULT_TIMEOUT, DEFAULT_URL, AsyncClient, Client
from .errors import (
    Compacted,
    Conflict,
    Forbidden,
    InvalidValue,
    KvsConnectionError,
    KvsError,
    OutcomeUnknown,
    PayloadTooLarge,
    PreconditionFailed,
    TooManyRedirects,
    Unauthorized,
    Unavailable,
)
from .followers import MAX_REDIRECTS
from .protocol import (
    VALUE_TYPES,
    Change,
    Compare,
    Event,
    Page,
    Precondition,
    Revised,
    TxnOp,
    TxnOutcome,
    ValueType,
    Written,
)

__all__ = [
    "__version__",
    "Client",
    "AsyncClient",
    "DEFAULT_URL",
    "DEFAULT_TIMEOUT",
    "KvsError",
    "InvalidValue",
    "Unauthorized",
    "Forbidden",
    "Conflict",
    "Compacted",
    "PreconditionFailed",
    "PayloadTooLarge",
    "Unavailable",
    "OutcomeUnknown",
    "TooManyRedirects",
    "KvsConnectionError",
    "MAX_REDIRECTS",
    "VALUE_TYPES",
    "ValueType",
    "Precondition",
    "Revised",
    "Written",
    "Page",
    "Compare",
    "TxnOp",
    "TxnOutcome",
    "Event",
    "Change",
]
