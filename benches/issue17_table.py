# python3 benches/issue17_table.py RESULTS.json [EARLIER_RESULTS.json]: issue 17's table (tiered's median wall
# time over the best of mimalloc, system and talc per Rust workload; geometric means of tiered/mimalloc wall time and peak RSS).
import json, math, sys
def load(p):
    d = json.load(open(p)); res = {}
    for r in d['results']:
        if r.get('preloaded'): continue
        res[(r['workload'], r['allocator'])] = r
    wls = [w['name'] for w in d['workloads']]
    return res, wls
def rows(p):
    res, wls = load(p); out = {}; gw = []; gr = []
    for w in wls:
        t = res.get((w, 'tiered'))
        if not t or t['verdict'] != 'ok': continue
        best = min(res[(w, a)]['median_wall_s'] for a in ('mimalloc', 'system', 'talc') if (w, a) in res and res[(w, a)]['verdict'] == 'ok')
        m = res.get((w, 'mimalloc'))
        out[w] = t['median_wall_s'] / best
        if m: gw.append(t['median_wall_s'] / m['median_wall_s']); gr.append(t['median_maxrss_mib'] / m['median_maxrss_mib'])
    g = lambda xs: math.exp(sum(map(math.log, xs)) / len(xs))
    return out, g(gw), g(gr), len(gw)
a = rows(sys.argv[1]); b = rows(sys.argv[2]) if len(sys.argv) > 2 else None
for w, v in a[0].items():
    prev = f" ({b[0][w]:.2f})" if b and w in b[0] else ""
    print(f"| {'**'+w+'**' if v > 1.2 else w} | {v:.2f}{prev} |")
print(f"| geometric mean, wall / mimalloc ({a[3]} workloads) | {a[1]:.2f}" + (f" ({b[1]:.2f})" if b else "") + " |")
print(f"| peak RSS / mimalloc (geometric mean) | {a[2]:.2f}" + (f" ({b[2]:.2f})" if b else "") + " |")
