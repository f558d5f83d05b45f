import numpy as np
import pytest
import torch
from PIL import Image
from transformers.modeling_outputs import BaseModelOutputWithPooling

from course_utils import embeddings
from course_utils.config import clip_model as resolve_model_name
from course_utils.embeddings import features_to_array, l2_normalize, load_clip
from course_utils.errors import CourseError
from course_utils.images import to_rgb


def test_features_from_transformers_4_tensor():
    out = features_to_array(torch.tensor([[3.0, 4.0], [0.0, 2.0]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 1.0]], rtol=1e-6)


def test_features_from_transformers_5_model_output():
    output = BaseModelOutputWithPooling(
        last_hidden_state=torch.zeros(1, 5, 7), pooler_output=torch.tensor([[0.0, 5.0, 0.0]])
    )
    np.testing.assert_allclose(features_to_array(output), [[0.0, 1.0, 0.0]])


def test_features_reject_other_objects():
    with pytest.raises(TypeError):
        features_to_array({"pooler_output": None})


def test_l2_normalize_rows_and_zero_vector():
    out = l2_normalize(np.array([[1.0, 1.0], [0.0, 0.0]]))
    assert np.isclose(np.linalg.norm(out[0]), 1.0)
    assert np.all(out[1] == 0)


def test_embeddings_are_normalised_float32(tiny_embedder, catalog_dir):
    texts = tiny_embedder.embed_texts(["a red circle", "blue"])
    images = tiny_embedder.embed_images(sorted(catalog_dir.glob("*.png"))[:3], batch_size=2)
    for arr, n in ((texts, 2), (images, 3)):
        assert arr.dtype == np.float32 and arr.shape == (n, tiny_embedder.dim)
        np.testing.assert_allclose(np.linalg.norm(arr, axis=1), 1.0, rtol=1e-5)


def test_batching_does_not_change_the_embeddings(tiny_embedder, catalog_dir):
    paths = sorted(catalog_dir.glob("*.png"))
    np.testing.assert_allclose(
        tiny_embedder.embed_images(paths, batch_size=1), tiny_embedder.embed_images(paths, batch_size=8), atol=1e-5
    )


def test_long_text_is_truncated_not_an_error(tiny_embedder):
    long = "red " * 500
    out = tiny_embedder.embed_texts([long, "red"])
    assert out.shape[0] == 2


@pytest.mark.parametrize("mode", ["P", "RGBA", "L", "CMYK", "LA", "1", "I;16"])
def test_any_image_mode_embeds(tiny_embedder, mode):
    image = Image.new("RGB", (40, 30), (200, 30, 30)).convert(mode)
    assert to_rgb(image).mode == "RGB"
    assert tiny_embedder.embed_images([image]).shape == (1, tiny_embedder.dim)


def test_transparent_pixels_become_white():
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert to_rgb(image).getpixel((0, 0)) == (255, 255, 255)


def test_model_resolution_order(monkeypatch):
    monkeypatch.delenv("COURSE_CLIP_MODEL", raising=False)
    assert resolve_model_name() == "openai/clip-vit-base-patch32"
    monkeypatch.setenv("COURSE_CLIP_MODEL", "some/model")
    assert resolve_model_name() == "some/model"
    assert resolve_model_name("arg/model") == "arg/model"


def test_local_folder_loads_with_a_weight_hash_id(tiny_clip_dir, tiny_embedder):
    assert tiny_embedder.model_id.startswith(tiny_clip_dir.name + "@")
    assert tiny_embedder.device == "cpu"
    assert load_clip(str(tiny_clip_dir), device="cpu") is tiny_embedder  # cached per process


def test_missing_local_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CourseError, match="No CLIP model folder"):
        load_clip(str(tmp_path / "missing"), device="cpu")


def test_offline_falls_back_to_the_bundled_model(monkeypatch, tmp_path, tiny_clip_dir, capsys):
    monkeypatch.setattr(embeddings, "BUNDLED_MODEL_DIR", tiny_clip_dir)
    monkeypatch.setattr(embeddings, "_CACHE", {})
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    embedder = load_clip("openai/clip-vit-base-patch32", device="cpu")
    assert embedder.source == str(tiny_clip_dir)
    assert "bundled offline mini-CLIP" in capsys.readouterr().err


@pytest.mark.parametrize("reachable", [True, False])
def test_uncached_model_without_hub_falls_back(monkeypatch, tiny_clip_dir, capsys, reachable):
    calls = []

    def fake_from_pretrained(source, **kwargs):
        calls.append((source, kwargs.get("local_files_only", False)))
        if source == "org/not-cached":
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return real(source, **kwargs)

    real = embeddings._from_pretrained
    monkeypatch.setattr(embeddings, "_from_pretrained", fake_from_pretrained)
    monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: reachable)
    monkeypatch.setattr(embeddings, "BUNDLED_MODEL_DIR", tiny_clip_dir)
    monkeypatch.setattr(embeddings, "_CACHE", {})
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    embedder = load_clip("org/not-cached", device="cpu")
    # the cache first; a download only when the hub answers; then the bundled model
    download = [("org/not-cached", False)] if reachable else []
    assert calls == [("org/not-cached", True), *download, (str(tiny_clip_dir), False)]
    assert embedder.source == str(tiny_clip_dir)
    assert "cannot be reached" in capsys.readouterr().err


def test_hub_probe_fails_fast_on_a_closed_port(monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert embeddings.hub_reachable(timeout=1.0) is False


def test_cuda_request_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(CourseError, match="CUDA"):
        embeddings.pick_device("cuda")
