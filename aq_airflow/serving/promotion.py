"""An endpoint's promoted version: ``<root>/_models/<endpoint>/current.json``
(``artifacts.model_repository.Promotion``), read and replaced on the artifact store.

Replaced whole, never edited: on a local disk through a temporary file renamed over it (a reader
sees the old record or the new one); on an object store by one PUT, which is atomic per object.
"""

from __future__ import annotations

import posixpath
import uuid

import pyarrow.fs as pafs

from aq_airflow.artifacts.model_repository import Promotion, current_path
from aq_airflow.artifacts.store import filesystem


def current_uri(root: str, endpoint: str) -> str:
    return f"{root.rstrip('/')}/{current_path(endpoint)}"


def read_current(root: str, endpoint: str) -> Promotion | None:
    """The version ``endpoint`` serves, or None before its first promotion."""
    uri = current_uri(root, endpoint)
    fs, path = filesystem(uri)
    try:
        with fs.open_input_stream(path) as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError as error:  # pyarrow's object stores say "not found" as an OSError
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        raise OSError(f"could not read {uri}: {error}") from None
    promotion = Promotion.from_json(text, uri)
    if promotion.endpoint != endpoint:  # a record copied from another endpoint's folder
        raise ValueError(f"{uri} is not a promotion record aq-airflow wrote (it names endpoint `{promotion.endpoint}`)")
    return promotion


def write_current(root: str, promotion: Promotion) -> None:
    """Make ``promotion`` the endpoint's current version (atomic replace)."""
    fs, path = filesystem(current_uri(root, promotion.endpoint))
    data = (promotion.to_json() + "\n").encode()
    fs.create_dir(posixpath.dirname(path), recursive=True)
    if not isinstance(fs, pafs.LocalFileSystem):
        with fs.open_output_stream(path) as handle:
            handle.write(data)
        return
    staging = f"{posixpath.dirname(path)}/.current.json.{uuid.uuid4().hex[:8]}"
    with fs.open_output_stream(staging) as handle:
        handle.write(data)
    fs.move(staging, path)
