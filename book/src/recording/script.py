import threading, json
def work(n):
    rows = [{"id": i, "name": "item-%d" % i, "tags": ["t%d" % (i % 7)] * (i % 5)} for i in range(n)]
    text = json.dumps(rows)
    return len(json.loads(text))
threads = [threading.Thread(target=work, args=(20000,)) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print("done")
