"""The older single-file client, kept for existing users: `argent_client.Client` is the
`argent` package's Client (python/argent) whose search() takes one embedding and returns the raw
SearchResponse (ids, scores, server_ms, ...), as it always did. New code: `import argent`.

    from argent_client import Client
    with Client("tcp://127.0.0.1:5555") as client:
        hits = client.search([0.1] * 128, k=10, filter="1:3 OR 2:5")
        print(hits.ids, hits.scores)

A gateway with gateway.auth on (configs/deploy.yaml) takes only CURVE clients whose public key is
in its allow-list: pass this client's key pair file and the server's public key file, both
written by `argent admin keygen` (docs/reliability.md, "Authentication"):

    Client("tcp://host:5555", client_keys="keys/feed.key", server_key="keys/server.pub")
"""

import argent
from argent import ArgentError, pb  # noqa: F401  (re-exported for existing users)


class Client(argent.Client):
    def search(self, embedding, k=0, nprobe=0, exact=False, filter="", exclude_ids=(),
               timeout_ms=0, task_weights=(), rerank_depth=0):
        return self.search_response(embedding, k=k, nprobe=nprobe, exact=exact, filter=filter,
                                    exclude_ids=exclude_ids, timeout_ms=timeout_ms,
                                    task_weights=task_weights, rerank_depth=rerank_depth)

    def upsert(self, items):
        """Inserts or replaces items atomically: an iterable of (id, embedding, features)."""
        items = list(items)
        request = pb.Request()
        for item_id, embedding, features in items:
            item = request.upsert.items.add()
            item.id = int(item_id)
            item.embedding.extend(float(v) for v in embedding)
            for feature, values in (features or {}).items():
                values = values if isinstance(values, (list, tuple)) else [values]
                item.features[int(feature)].values.extend(int(v) for v in values)
        return self._call(request, "upsert")

    def delete(self, ids):
        request = pb.Request()
        request.delete.ids.extend(int(i) for i in ids)
        return self._call(request, "delete")
