"""`hoard init`: a commented hoard.toml whose example workflow runs as written — it archives a
folder that exists to a local folder (no account needed)."""

from __future__ import annotations

import json

TEMPLATE = """\
# hoard.toml: named workflows that `hoard run NAME` runs now and `hoard daemon` runs on their
# schedules. hoard looks for this file in the current folder, then in your config folder
# (~/.config/hoard/hoard.toml on Linux), or where --config points.
#
# Values may use ${{ENV_VAR}} for what should not be written down (a bucket, an account id).
# Credentials never go here: hoard takes them from the standard chain (AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY in the environment, a profile in ~/.aws/credentials, SSO, or an
# instance role).

# --- Remotes: where workflows archive to, by name ------------------------------------------
[remotes.local]
url = {archive}                       # a local or mounted folder; created on first use

# An S3-compatible store (AWS, R2, MinIO, Wasabi, …). Uncomment and adjust:
# [remotes.r2]
# url = "s3://${{R2_BUCKET}}/backup"
# endpoint_url = "https://${{R2_ACCOUNT_ID}}.r2.cloudflarestorage.com"
# profile = "r2"                      # credentials stay in ~/.aws/credentials
# region = "auto"
# path_style = false

# --- Workflows ------------------------------------------------------------------------------
[workflows.example]
description = {description}
# sources: folders, files or patterns, or {{ pattern = "~/Pictures/**/*.jpg", base = "~/Pictures" }}
sources = [{source}]
exclude = ["**/.thumbnails/**", "*.tmp"]
skip_names = [".DS_Store", "Thumbs.db"]
skip_paths = [{archive}]              # never archive the archive itself
to = "local"                          # a remote above, or a URL
template = "backup/{{file_modified:%Y/%m}}/{{rel_path}}"
mode = "push"                         # "push" archives; "sync" mirrors (see below)
schedule = "0 2 * * *"                # cron: minute hour day month weekday
# timezone = "Europe/Berlin"          # default: this machine's zone
workers = 4
# keep_awake = true                   # keep the machine from sleeping while it runs

# Photos by date, to an archive tier on S3 (needs [remotes.r2] above):
# [workflows.photos]
# sources = [{{ pattern = "~/Pictures/**/*.{{jpg,png,heic}}", base = "~/Pictures" }}]
# exclude = ["**/.thumbnails/**"]
# to = "r2"
# template = "backup/{{file_created:%Y-%m-%d}}/{{file_created_datetime}}:{{filename}}"
# tier = "deep_archive"
# schedule = "30 3 * * *"

# A mirror whose deletes are guarded (see `hoard sync --help`):
# [workflows.projects]
# sources = ["~/Projects"]
# to = "s3://my-bucket/projects"
# mode = "sync"
# delete = true
# max_delete = "20%"
# marker = ".hoard-source"            # deletes only when ~/Projects/.hoard-source exists
# schedule = "0 * * * *"
"""


def example_config(source: str, archive: str) -> str:
    """The text of the example file archiving ``source`` into ``archive`` (paths as the user
    would write them, `~` allowed)."""
    return TEMPLATE.format(
        source=json.dumps(source),
        archive=json.dumps(archive),
        description=json.dumps(f"archive {source} to a local folder, every night at 02:00"),
    )
