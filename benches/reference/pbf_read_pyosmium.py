"""Reference for the PBF-read benchmark: pyosmium reading the same file, keeping what
AccessAtlas keeps when told to keep every tag (node coordinates, tagged nodes with their tags,
ways with tags and node lists, multipolygon relations).
Prints one JSON line. Run by `cargo xtask bench` in its own venv."""

import importlib.metadata
import json
import sys
import time

import osmium


class Keep(osmium.SimpleHandler):
    def __init__(self):
        super().__init__()
        self.coords = {}
        self.tagged = []
        self.ways = []
        self.rels = 0

    def node(self, n):
        self.coords[n.id] = (n.location.lat, n.location.lon)
        if n.tags:
            self.tagged.append((n.id, dict(n.tags)))

    def way(self, w):
        self.ways.append((w.id, dict(w.tags), [r.ref for r in w.nodes]))

    def relation(self, r):
        if r.tags.get("type") == "multipolygon":
            self.rels += 1


path, repeat = sys.argv[1], int(sys.argv[2])
times = []
elements = 0
for _ in range(repeat):
    t = time.perf_counter()
    h = Keep()
    h.apply_file(path)
    times.append(time.perf_counter() - t)
    elements = len(h.coords) + len(h.ways) + h.rels
times.sort()
s = times[len(times) // 2]
print(json.dumps({"bench": "pbf_read_pyosmium", "elements": elements, "seconds": s,
                  "elements_per_s": elements / s, "osmium": importlib.metadata.version("osmium")}))
