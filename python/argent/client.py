"""The Argent client: searches, writes and admin calls over ZeroMQ + Protobuf, numpy in and out.

    import numpy as np
    import argent

    with argent.Client("tcp://127.0.0.1:5555") as client:
        r = client.search(np.random.rand(8, 128).astype(np.float32), k=10, filter="1:3 OR 2:5")
        r.ids        # int64 [8, 10], best first; -1 pads a query with fewer than 10 eligible items
        r.scores     # float32 [8, 10]; -inf pads
        client.upsert(ids=[7], embeddings=np.ones((1, 128)), features=[{3: [100]}])
        client.delete([7])

One Client is one DEALER socket and is not thread-safe; `search_concurrent` opens one per
worker thread. Every call raises ArgentError for a reply whose status is not OK and TimeoutError
when no reply comes within `timeout_s`.
"""

import concurrent.futures
import itertools

import numpy as np

from . import _zmq as zmq  # pyzmq, or ctypes on libzmq where pyzmq is missing
from . import keys as _keys
from ._messages import pb


class ArgentError(RuntimeError):
    """A reply whose status is not OK; `code` is the argent.v1.StatusCode name."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SearchResult:
    """Results of one query (1-D arrays) or a batch ([n, k] arrays), best first, ties by id.

    ids: int64, -1 where a query had fewer than k eligible items; scores: float32 retrieval
    scores, -inf there; counts: results per query; values: the reranker's blended values (NaN
    padded) when the server reranks, else None; server_ms: arrival-to-reply time per query.
    """

    def __init__(self, ids, scores, counts, server_ms, values=None):
        self.ids, self.scores, self.counts, self.server_ms, self.values = (
            ids, scores, counts, server_ms, values)

    def __repr__(self):
        return f"SearchResult(ids={self.ids!r}, scores={self.scores!r})"


def _as_queries(embeddings):
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim not in (1, 2):
        raise ValueError(f"embeddings must be [dim] or [n, dim]; got shape {x.shape}")
    return x


def _status_error(reply):
    return ArgentError(pb.StatusCode.Name(reply.status.code), reply.status.message)


class Client:
    """One connection to a gateway. `client_keys` (a key-pair file, or (public, secret)) and
    `server_key` (the server's public-key file, or its key) turn on CURVE encryption and
    authentication; both or neither."""

    def __init__(self, endpoint="tcp://127.0.0.1:5555", timeout_s=30.0, client_keys=None,
                 server_key=None):
        if (client_keys is None) != (server_key is None):
            raise ValueError("CURVE needs both client_keys (this client's pair) and server_key "
                             "(the server's public key)")
        self.endpoint = endpoint
        self._timeout_s = timeout_s
        self._curve = (client_keys, server_key)
        self._context = zmq.Context.instance()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        if client_keys is not None:
            public, secret = (_keys.read_key_pair(client_keys)
                              if isinstance(client_keys, str) else client_keys)
            server = (_keys.read_public_key(server_key)
                      if isinstance(server_key, str) else server_key)
            self._socket.curve_publickey = public
            self._socket.curve_secretkey = secret
            self._socket.curve_serverkey = server
        self._socket.connect(endpoint)
        self._timeout_ms = int(timeout_s * 1000)
        self._ids = itertools.count(1)

    def close(self):
        self._socket.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- transport --------------------------------------------------------------------------

    def _send(self, request, body):
        request_id = next(self._ids)
        getattr(request, body).request_id = request_id
        self._socket.send(request.SerializeToString())
        return request_id

    def _receive(self):
        """The next reply (any request id)."""
        if not self._socket.poll(self._timeout_ms):
            raise TimeoutError(f"no reply from {self.endpoint} within {self._timeout_ms} ms")
        response = pb.Response.FromString(self._socket.recv())
        which = response.WhichOneof("body")
        if which == "error":
            raise ArgentError(pb.StatusCode.Name(response.error.code), response.error.message)
        return getattr(response, which)

    def _call(self, request, body):
        request_id = self._send(request, body)
        while True:
            reply = self._receive()
            if reply.request_id == request_id:  # replies to abandoned requests are skipped
                if reply.status.code != pb.OK:
                    raise _status_error(reply)
                return reply

    # -- search -----------------------------------------------------------------------------

    @staticmethod
    def _search_request(embedding, k, nprobe, exact, filter, exclude_ids, timeout_ms,
                        task_weights=(), rerank_depth=0):
        request = pb.Request()
        s = request.search
        s.embedding.extend(np.asarray(embedding, dtype=np.float32).tolist())
        s.k, s.nprobe, s.exact, s.filter = int(k), int(nprobe), bool(exact), filter
        s.exclude_ids.extend(int(i) for i in exclude_ids)
        s.timeout_ms = int(timeout_ms)
        s.task_weights.extend(float(w) for w in task_weights)
        s.rerank_depth = int(rerank_depth)
        return request

    def search_response(self, embedding, k=0, nprobe=0, exact=False, filter="", exclude_ids=(),
                        timeout_ms=0, task_weights=(), rerank_depth=0):
        """One query; returns the raw argent.v1.SearchResponse (ids, scores, values,
        task_scores, shard_timings, queue_ms, server_ms, batch_size)."""
        request = self._search_request(embedding, k, nprobe, exact, filter, exclude_ids,
                                       timeout_ms, task_weights, rerank_depth)
        return self._call(request, "search")

    def search(self, embeddings, k=10, nprobe=0, exact=False, filter="", exclude_ids=(),
               timeout_ms=0, window=256):
        """Searches one query ([dim] -> 1-D results) or a batch ([n, dim] -> [n, k] results).

        A batch is pipelined on this connection: up to `window` requests in flight, which the
        server batches dynamically. `filter` is one expression for every query or a list of one
        per query; k=0 uses the server's search.k (then the width is the longest result)."""
        x = _as_queries(embeddings)
        single = x.ndim == 1
        x = x.reshape(1, -1) if single else x
        filters = [filter] * len(x) if isinstance(filter, str) else list(filter)
        if len(filters) != len(x):
            raise ValueError(f"{len(filters)} filters for {len(x)} queries")
        replies = [None] * len(x)
        pending = {}
        next_query = 0
        while next_query < len(x) or pending:
            while next_query < len(x) and len(pending) < max(1, window):
                request = self._search_request(x[next_query], k, nprobe, exact,
                                               filters[next_query], exclude_ids, timeout_ms)
                pending[self._send(request, "search")] = next_query
                next_query += 1
            reply = self._receive()
            q = pending.pop(reply.request_id, None)
            if q is None:
                continue  # a reply to an earlier, abandoned call
            if reply.status.code != pb.OK:
                raise ArgentError(pb.StatusCode.Name(reply.status.code),
                                  f"query {q}: {reply.status.message}")
            replies[q] = reply
        result = _to_result(replies, k)
        if single:
            return SearchResult(result.ids[0], result.scores[0], result.counts[0],
                                result.server_ms[0],
                                None if result.values is None else result.values[0])
        return result

    def search_concurrent(self, embeddings, concurrency=4, **kwargs):
        """search() of an [n, dim] batch split over `concurrency` connections, one per thread;
        the same results as search()."""
        x = _as_queries(embeddings)
        if x.ndim != 2:
            raise ValueError("search_concurrent takes an [n, dim] batch")
        chunks = np.array_split(np.arange(len(x)), max(1, min(concurrency, len(x))))
        filter = kwargs.pop("filter", "")

        def run(rows):
            client = Client(self.endpoint, self._timeout_s, *self._curve)
            try:
                f = filter if isinstance(filter, str) else [filter[i] for i in rows]
                return client.search(x[rows], filter=f, **kwargs)
            finally:
                client.close()

        with concurrent.futures.ThreadPoolExecutor(len(chunks)) as pool:
            parts = list(pool.map(run, [c for c in chunks if len(c)]))
        width = max(p.ids.shape[1] for p in parts)

        def cat(name, fill, dtype):
            out = []
            for p in parts:
                a = getattr(p, name)
                pad = np.full((a.shape[0], width - a.shape[1]), fill, dtype=dtype)
                out.append(np.concatenate([a, pad], axis=1))
            return np.concatenate(out)

        values = None if parts[0].values is None else cat("values", np.nan, np.float32)
        return SearchResult(cat("ids", -1, np.int64), cat("scores", -np.inf, np.float32),
                            np.concatenate([p.counts for p in parts]),
                            np.concatenate([p.server_ms for p in parts]), values)

    # -- writes -----------------------------------------------------------------------------

    def upsert(self, ids, embeddings, features=None, batch=1000):
        """Inserts or replaces items: ids [n], embeddings [n, dim], features a list of n dicts
        {feature_id: value or [values]} (or None). Sent `batch` items a request; each request
        is atomic and acknowledged once durable and visible. Returns (applied, last sequence)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or len(x) != len(ids):
            raise ValueError(f"embeddings must be [{len(ids)}, dim]; got shape {x.shape}")
        if features is not None and len(features) != len(ids):
            raise ValueError(f"{len(features)} feature dicts for {len(ids)} items")
        applied, sequence = 0, 0
        for start in range(0, len(ids), batch):
            request = pb.Request()
            for i in range(start, min(start + batch, len(ids))):
                item = request.upsert.items.add()
                item.id = int(ids[i])
                item.embedding.extend(x[i].tolist())
                for feature, values in ((features[i] or {}) if features is not None else {}).items():
                    values = values if isinstance(values, (list, tuple, np.ndarray)) else [values]
                    item.features[int(feature)].values.extend(int(v) for v in values)
            reply = self._call(request, "upsert")
            applied += reply.applied
            sequence = reply.sequence
        return applied, sequence

    def delete(self, ids, batch=10000):
        """Deletes items by id, `batch` ids a request; returns (ids that were present, last
        sequence)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        applied, sequence = 0, 0
        for start in range(0, len(ids), batch):
            request = pb.Request()
            request.delete.ids.extend(int(i) for i in ids[start:start + batch])
            reply = self._call(request, "delete")
            applied += reply.applied
            sequence = reply.sequence
        return applied, sequence

    # -- admin ------------------------------------------------------------------------------

    def health(self):
        request = pb.Request()
        request.health.SetInParent()
        return self._call(request, "health")

    def stats(self):
        request = pb.Request()
        request.stats.SetInParent()
        return self._call(request, "stats")

    def snapshot(self):
        """Writes a snapshot of every partition and truncates the log (AdminResponse)."""
        request = pb.Request()
        request.admin.action = pb.AdminRequest.SNAPSHOT
        return self._call(request, "admin")

    def rebalance(self, plan, rank=-1, moves=()):
        """Starts a rebalance (AdminResponse with the planned moves): plan "even", "drain" or
        "activate" (with `rank`), or "explicit" with `moves` [(partition, to_rank), ...]. It
        runs in the background; stats().rebalance reports its progress."""
        request = pb.Request()
        request.admin.action = pb.AdminRequest.REBALANCE
        request.admin.plan = plan
        request.admin.rank = int(rank)
        for partition, to_rank in moves:
            m = request.admin.moves.add()
            m.partition = int(partition)
            m.to_rank = int(to_rank)
        return self._call(request, "admin")

    def status(self):
        """What `argent admin status --json` prints: health, versions, per-rank items,
        tombstones and load, and the partition map, as a dict."""
        h, s = self.health(), self.stats()
        return {
            "health": "ok", "server_version": h.version, "ranks": h.ranks,
            "backend": h.backend, "dim": h.dim, "items": h.items,
            "partitions": s.index_partitions, "qps": s.qps, "p50_ms": s.p50_ms,
            "p99_ms": s.p99_ms, "requests": s.requests,
            "shards": [{"rank": r.rank, "items": r.items, "tombstones": r.tombstones,
                        "partitions": list(r.partitions), "steps": r.steps,
                        "step_ms": r.step_ms} for r in s.shards],
        }


def _to_result(replies, k):
    width = int(k) if k else max((len(r.ids) for r in replies), default=0)
    n = len(replies)
    ids = np.full((n, width), -1, dtype=np.int64)
    scores = np.full((n, width), -np.inf, dtype=np.float32)
    reranked = any(len(r.values) for r in replies)
    values = np.full((n, width), np.nan, dtype=np.float32) if reranked else None
    counts = np.zeros(n, dtype=np.int64)
    server_ms = np.zeros(n, dtype=np.float32)
    for q, r in enumerate(replies):
        m = len(r.ids)
        counts[q] = m
        ids[q, :m] = r.ids
        scores[q, :m] = r.scores
        if reranked:
            values[q, :len(r.values)] = r.values
        server_ms[q] = r.server_ms
    return SearchResult(ids, scores, counts, server_ms, values)
