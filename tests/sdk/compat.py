"""Drives `synup serve` with the official synapse-sdk, as a data team's script would.

Usage: compat.py BASE_URL TOKEN WORKDIR COLLECTION_ID PROJECT_ID
Prints one JSON object with what it saw; any SDK exception fails the run.
"""
import json
import os
import sys

from synapse_sdk.clients.backend import BackendClient

base, token, work, collection_id, project_id = sys.argv[1:6]
collection_id, project_id = int(collection_id), int(project_id)
client = BackendClient(base, access_token=token)
out = {}

collections = client.list_data_collections()
out["collections"] = sorted(c["id"] for c in (collections["results"] if isinstance(collections, dict) else collections))
coll = client.get_data_collection(collection_id)
out["specs"] = [s["name"] for s in coll["file_specifications"]]
storage = client.get_default_storage()
out["storage_provider"] = storage.provider if hasattr(storage, "provider") else storage["provider"]

# Two units: small files, plus one large enough for multipart when the server's part size is small.
paths = []
for i in range(2):
    img = os.path.join(work, f"sdk_{i}.png")
    lab = os.path.join(work, f"sdk_{i}.json")
    with open(img, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + bytes([i]) * (1_200_000 if i == 1 else 10))
    with open(lab, "w") as f:
        json.dump({"i": i}, f)
    paths += [img, lab]
from pathlib import Path
result = client.upload_files_bulk([Path(p) for p in paths], max_workers=4, strategy="presigned")
res = result.results if hasattr(result, "results") else result["results"]
by_path = {}
for r in res:
    r = r if isinstance(r, dict) else r.model_dump()
    assert r["success"], r
    by_path[r["file_key"]] = r["checksum"]
out["uploaded"] = len(by_path)

# The non-presigned paths: a direct multipart POST and the chunked protocol.
import hashlib
direct = client.create_data_file(Path(paths[1]), use_chunked_upload=False)
chunked = client.create_data_file(Path(paths[2]), use_chunked_upload=True)
out["direct_ok"] = direct["checksum"] == hashlib.sha1(open(paths[1], "rb").read()).hexdigest()
out["chunked_ok"] = chunked["checksum"] == hashlib.sha1(open(paths[2], "rb").read()).hexdigest()

existing = client.verify_data_files_checksums(list(by_path.values()) + ["0" * 40])
out["verified"] = len(existing["existing_checksums"])

units = [
    {
        "data_collection": collection_id,
        "files": {
            "image_1": {"checksum": by_path[paths[2 * i]], "path": paths[2 * i]},
            "label_1": {"checksum": by_path[paths[2 * i + 1]], "path": paths[2 * i + 1]},
        },
        "meta": {"name": f"sdk_{i}", "origin_file_stem": f"sdk_{i}"},
        "groups": ["sdk-batch"],
    }
    for i in range(2)
]
created = client.create_data_units(units)
out["created"] = [u["id"] for u in created]
again = client.create_data_units(units)
out["created_again"] = [u["id"] for u in again]

tasks = client.create_tasks({"project": project_id, "data": [{"data_unit": u} for u in out["created"]]})
out["tasks"] = len(tasks)

listed = client.list_data_units(params={"data_collection": collection_id}, list_all=True)
if isinstance(listed, tuple):
    listed = list(listed[0])
elif isinstance(listed, dict):
    listed = listed["results"]
out["listed"] = sorted([u["id"], u["meta"].get("name"), sorted(u["files"].keys())] for u in listed)
print(json.dumps(out))
