"""Uploading a published folder to the Hub (`adlr-hf publish ... --push`)."""

from __future__ import annotations

import os
from pathlib import Path


class PushUnavailable(RuntimeError):
    """The folder was published locally but could not be pushed (no token, offline, no --repo-id, hub error)."""


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES",
                                                                                                "TRUE"}


def _token() -> str | None:
    import huggingface_hub

    return os.environ.get("HF_TOKEN") or huggingface_hub.get_token() or None


def push_to_hub(folder, repo_id: str | None, *, private: bool | None = None) -> str:
    """create_repo + upload_folder. Raises PushUnavailable (one message naming what is missing) when there is no
    --repo-id, no token or no network; the local folder is left as it is."""
    import huggingface_hub

    folder = Path(folder)
    missing = []
    if not repo_id:
        missing.append("--repo-id ORG/NAME")
    token = _token()
    if not token:
        missing.append("a Hugging Face token (set HF_TOKEN or run `hf auth login`)")
    if _offline():
        missing.append("network access (HF_HUB_OFFLINE is set; unset it to push)")
    if missing:
        raise PushUnavailable(f"not pushed to the Hub: missing {'; '.join(missing)}. The model is published locally "
                              f"at {folder}; push it later with `adlr-hf publish SRC {folder} --repo-id ORG/NAME "
                              "--push`.")
    try:
        huggingface_hub.create_repo(repo_id, token=token, private=private, exist_ok=True)
        info = huggingface_hub.upload_folder(repo_id=repo_id, folder_path=folder, token=token,
                                             commit_message="Upload with adlr-hf publish")
    except Exception as err:  # noqa: BLE001 - network and Hub errors all mean "not pushed"; say which
        raise PushUnavailable(f"not pushed to the Hub: {type(err).__name__}: {err} (check the network and that the "
                              f"token may write to {repo_id}). The model is published locally at {folder}.") from None
    return str(getattr(info, "commit_url", info))
