"""A threaded, allocation-heavy Python workload with deterministic output.

Eight threads build and tear down dicts, lists, strings, JSON documents, sets and
sorted structures, hand objects to each other through a queue, and report checksums.
Run under each preloaded strategy; the output must equal the plain run's.
"""
import hashlib
import json
import queue
import random
import threading
from concurrent.futures import ThreadPoolExecutor

THREADS = 8
ROUNDS = 300


def churn(seed, inbox, outbox):
    rng = random.Random(seed)
    digest = hashlib.sha256()
    keep = []
    for r in range(ROUNDS):
        doc = {
            "id": r,
            "name": "".join(rng.choice("abcdefghij") for _ in range(rng.randrange(1, 40))),
            "values": [rng.randrange(10**6) for _ in range(rng.randrange(0, 200))],
            "nested": {str(k): [k] * (k % 7) for k in range(rng.randrange(0, 30))},
        }
        text = json.dumps(doc, sort_keys=True)
        back = json.loads(text)
        assert back == doc
        digest.update(text.encode())
        keep.append(bytearray(text.encode()) * rng.randrange(1, 4))
        if len(keep) > 50:
            keep.pop(rng.randrange(len(keep)))
        words = sorted(set(text.split('"')))
        digest.update(" ".join(words).encode())
        if r % 10 == 0:
            outbox.put([seed, r, "x" * rng.randrange(1000, 50000)])
            try:
                got = inbox.get_nowait()
                assert got[2] == "x" * len(got[2]), "a string from another thread changed"
            except queue.Empty:
                pass
    return seed, digest.hexdigest(), sum(len(k) for k in keep)


def main():
    queues = [queue.Queue() for _ in range(THREADS)]
    results = []
    lock = threading.Lock()

    def run(i):
        res = churn(i, queues[i], queues[(i + 1) % THREADS])
        with lock:
            results.append(res)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # What arrives through the queues depends on timing, so it is checked, not printed.
    for seed, digest, kept in sorted(results):
        print("thread", seed, digest[:16], "kept", kept)

    with ThreadPoolExecutor(max_workers=4) as pool:
        squares = list(pool.map(lambda n: sum(i * i for i in range(n)), range(0, 3000, 100)))
    print("pool", hashlib.sha256(repr(squares).encode()).hexdigest())

    big = {i: str(i) * (i % 50) for i in range(100000)}
    del big
    s = "".join(str(i) for i in range(200000))
    print("string", len(s), hashlib.sha256(s.encode()).hexdigest()[:16])


if __name__ == "__main__":
    main()
