"""Lists a collection's units through the official SDK (which downloads every file URL).

Usage: list_units.py BASE_URL TOKEN COLLECTION_ID
Prints a JSON list of {id, name, specs, downloaded} sorted by name.
"""
import json
import os
import sys

from synapse_sdk.clients.backend import BackendClient

base, token, collection_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = BackendClient(base, access_token=token)
units, count = client.list_data_units(params={"data_collection": collection_id}, list_all=True)
out = []
for u in units:
    files = u["files"]
    downloaded = sum(1 for v in files.values() if os.path.exists(str(v if isinstance(v, str) else v.get("path", v.get("url", "")))))
    out.append({"id": u["id"], "name": u["meta"].get("name"), "specs": sorted(files), "downloaded": downloaded})
out.sort(key=lambda u: u["name"])
assert len(out) == count, (len(out), count)
print(json.dumps(out))
