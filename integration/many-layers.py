#!/usr/bin/env python3
"""Build an image of exactly N layers cheaply: BASE's layers plus tiny ones on top.

Usage: many-layers.py BASE TOTAL NAME

Real bootc images are rechunked to 64-128 layers and more; a Containerfile of hundreds of steps
takes many minutes to build, so this writes an OCI archive instead: BASE (`podman save`), plus
TOTAL - len(BASE) layers of one small file each (/usr/share/bcvk-layers/NNN), and loads it with
`podman load`. The result boots like BASE; the guest can count the files to prove every layer is
stacked. Skipped when NAME already exists with the same recipe label (recipe = this script, BASE's
ID and TOTAL).
"""
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile


def podman(*args, **kw):
    return subprocess.run(["podman", *args], check=True, capture_output=True, text=True, **kw).stdout


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def main():
    base, total, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    base_id = podman("image", "inspect", "--format", "{{.Id}}", base).strip()
    with open(__file__, "rb") as f:
        recipe = sha256(f.read() + f"{base_id} {total}".encode())[:16]
    try:
        have = podman("image", "inspect", "--format", '{{index .Labels "bcvk.recipe"}}', name).strip()
    except subprocess.CalledProcessError:
        have = ""
    if have == recipe:
        return
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/var/tmp")) as tmp:
        archive = os.path.join(tmp, "base.tar")
        podman("save", "--format", "oci-archive", "-o", archive, base)
        layout = os.path.join(tmp, "layout")
        with tarfile.open(archive) as t:
            t.extractall(layout, filter="tar")
        os.unlink(archive)
        blobs = os.path.join(layout, "blobs", "sha256")

        def read_blob(digest):
            with open(os.path.join(blobs, digest.split(":", 1)[1]), "rb") as f:
                return f.read()

        def write_blob(data):
            digest = sha256(data)
            with open(os.path.join(blobs, digest), "wb") as f:
                f.write(data)
            return "sha256:" + digest, len(data)

        with open(os.path.join(layout, "index.json")) as f:
            index = json.load(f)
        manifest = json.loads(read_blob(index["manifests"][0]["digest"]))
        config = json.loads(read_blob(manifest["config"]["digest"]))
        have_layers = len(manifest["layers"])
        if total < have_layers:
            sys.exit(f"{base} has {have_layers} layers already, more than {total}")
        for n in range(have_layers, total):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
                for d in ("usr/", "usr/share/", "usr/share/bcvk-layers/"):
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    t.addfile(info)
                body = f"layer {n}\n".encode()
                info = tarfile.TarInfo(f"usr/share/bcvk-layers/{n:03d}")
                info.size, info.mode, info.mtime = len(body), 0o644, 0
                t.addfile(info, io.BytesIO(body))
            data = buf.getvalue()
            digest, size = write_blob(data)
            manifest["layers"].append(
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size}
            )
            config["rootfs"]["diff_ids"].append(digest)
            config.setdefault("history", []).append({"created_by": f"bcvk many-layers {n}"})
        config.setdefault("config", {}).setdefault("Labels", {})["bcvk.recipe"] = recipe
        digest, size = write_blob(json.dumps(config).encode())
        manifest["config"] = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": size}
        digest, size = write_blob(json.dumps(manifest).encode())
        index["manifests"] = [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size}]
        with open(os.path.join(layout, "index.json"), "w") as f:
            json.dump(index, f)
        out = os.path.join(tmp, "image.tar")
        with tarfile.open(out, "w") as t:
            for entry in sorted(os.listdir(layout)):
                t.add(os.path.join(layout, entry), arcname=entry)
        loaded = podman("load", "-q", "-i", out)
        image_id = loaded.strip().split()[-1].split(":")[-1]
        podman("tag", image_id, name)
        layers = len(json.loads(podman("image", "inspect", name))[0]["RootFS"]["Layers"])
        if layers != total:
            sys.exit(f"{name} has {layers} layers, not {total}")


if __name__ == "__main__":
    main()
