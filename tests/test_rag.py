from pathlib import Path

import pytest

from course_utils.errors import CourseError
from course_utils.llm import LLMResponse
from course_utils.prompts import CONTEXT_CLOSE, CONTEXT_OPEN, SYSTEM_PROMPT
from course_utils.rag import ImageRAG, build_metadata_context


class RecordingLLM:
    """A duck-typed LLM that can pin a provider, like the course's cascade: records what it is sent."""

    pins_provider = True

    def __init__(self):
        self.calls = []

    def generate(self, prompt, system_prompt=None, provider=None, model=None):
        self.calls.append(("text", prompt, None, system_prompt, (provider, model)))
        return LLMResponse("blind answer", provider or "Fake", model or "fake-text")

    def generate_multimodal(self, prompt, images, system_prompt=None):
        self.calls.append(("multimodal", prompt, list(images), system_prompt, None))
        return LLMResponse("grounded answer", "Fake", "fake-1")


class MinimalLLM:
    """Only the two required methods, without a provider argument."""

    def generate(self, prompt, system_prompt=None):
        return LLMResponse("ok", "Minimal", "m")

    def generate_multimodal(self, prompt, images, system_prompt=None):
        return LLMResponse("ok", "Minimal", "m")


def test_prompt_holds_every_hit_in_rank_order_and_images_are_the_hits(tiny_index, tiny_embedder):
    llm = RecordingLLM()
    result = ImageRAG(tiny_index, tiny_embedder, llm).answer("What red products do you have?", k=4)
    kind, prompt, images, system, _ = llm.calls[0]
    assert kind == "multimodal" and system == SYSTEM_PROMPT
    assert images == [h.path for h in result.hits] and len(images) == 4
    positions = [prompt.index(f"[{h.rank}] name: {h.product.name} |") for h in result.hits]
    assert positions == sorted(positions)
    inside = prompt[prompt.index(CONTEXT_OPEN) : prompt.index(CONTEXT_CLOSE)]
    for hit in result.hits:
        assert f"price: ${hit.product.price:.2f}" in inside and hit.product.color_name in inside
    assert prompt.rstrip().endswith("Question: What red products do you have?")
    assert (result.answer, result.provider, result.model, result.used_rag) == (
        "grounded answer",
        "Fake",
        "fake-1",
        True,
    )


def test_without_rag_sends_no_context_and_pins_the_provider(tiny_index, tiny_embedder):
    llm = RecordingLLM()
    rag = ImageRAG(tiny_index, tiny_embedder, llm)
    with_rag, without = rag.compare("Which products are striped?")
    kind, prompt, images, _, provider = llm.calls[-1]
    assert kind == "text" and images is None and CONTEXT_OPEN not in prompt
    assert provider == (with_rag.provider, with_rag.model) == ("Fake", "fake-1")
    assert (without.provider, without.model) == ("Fake", "fake-1")
    assert without.used_rag is False and without.hits == ()


def test_an_llm_without_provider_argument_still_works(tiny_index, tiny_embedder):
    rag = ImageRAG(tiny_index, tiny_embedder, MinimalLLM())
    result = rag.answer_without_rag("anything", provider="Minimal", model="m")
    assert result.answer == "ok" and "may come from another model" in result.note


class QuotaError(Exception):
    """What an llm_cascade provider raises when its free tier is used up (the cascade moves on)."""


class NotFoundError(Exception):
    """Any other provider error: an llm_cascade cascade raises it instead of moving on."""


class LlmCascadeShaped:
    """The interface and behaviour of the course's own ``llm_cascade`` client, exactly.

    ``generate(prompt, system_prompt=None, model=None, max_tokens=1024)`` and
    ``generate_multimodal(prompt, images, system_prompt=None, ...)``, no ``provider`` argument; the
    providers are tried in a fixed order, ``model=`` is applied to every one of them, quota,
    availability and authentication errors move on, anything else is raised.
    """

    def __init__(self):
        self.providers = [("Gemini", "gemini-2.5-flash"), ("Ollama Cloud", "kimi-k2.5:cloud")]
        self.gemini_quota_left = 0  # Gemini answers 429 once, then recovers
        self.calls = []

    def _ask(self, model):
        for name, default in self.providers:
            try:
                if name == "Gemini" and self.gemini_quota_left == 0:
                    self.gemini_quota_left = 1
                    raise QuotaError("429 RESOURCE_EXHAUSTED")
                if model is not None and model != default:
                    raise NotFoundError(f"404: model {model!r} is not served by {name}")
                return LLMResponse(f"answer from {name}", name, model or default)
            except QuotaError:
                continue
        raise RuntimeError("every provider failed")

    def generate(self, prompt, system_prompt=None, model=None, max_tokens=1024):
        self.calls.append(("text", model))
        return self._ask(model)

    def generate_multimodal(self, prompt, images, system_prompt=None, model=None, max_tokens=1024):
        self.calls.append(("multimodal", model))
        return self._ask(model)


def test_compare_with_an_llm_cascade_client_never_pins_a_model_without_its_provider(tiny_index, tiny_embedder):
    llm = LlmCascadeShaped()
    with_rag, without = ImageRAG(tiny_index, tiny_embedder, llm).compare("Which products are red?")
    assert (with_rag.provider, with_rag.model) == ("Ollama Cloud", "kimi-k2.5:cloud")  # Gemini was out of quota
    assert llm.calls[-1] == ("text", None)  # unpinned: Gemini is never asked for kimi's model
    assert (without.provider, without.answer) == ("Gemini", "answer from Gemini")
    assert "may come from another model" in without.note and "kimi-k2.5:cloud" in without.note


def test_default_llm_is_the_offline_answerer(tiny_index, tiny_embedder):
    result = ImageRAG(tiny_index, tiny_embedder).answer("red", k=2)
    assert result.provider == "offline"
    retrieved = {h.product.name for h in result.hits}
    mentioned = {p.name for p in tiny_index.products if p.name in result.answer}
    assert mentioned <= retrieved


@pytest.mark.parametrize("question", ["", "   \n\t"])
def test_empty_question_never_reaches_the_model(tiny_index, tiny_embedder, question):
    llm = RecordingLLM()
    rag = ImageRAG(tiny_index, tiny_embedder, llm)
    with pytest.raises(CourseError, match="empty"):
        rag.answer(question)
    with pytest.raises(CourseError, match="empty"):
        rag.answer_without_rag(question)
    assert llm.calls == []


def test_metadata_context_is_fenced(tiny_index, tiny_embedder):
    hits = ImageRAG(tiny_index, tiny_embedder).retrieve("blue", k=2).hits
    context = build_metadata_context(hits)
    assert context.startswith(CONTEXT_OPEN) and context.endswith(CONTEXT_CLOSE)
    assert context.count("\n[") == 2


class InventingLLM(MinimalLLM):
    def generate(self, prompt, system_prompt=None):
        return LLMResponse("Try our Widget Pro or Gadget Z.", "Inventor", "i")


def test_results_carry_a_grounding_report(tiny_index, tiny_embedder):
    without = ImageRAG(tiny_index, tiny_embedder, InventingLLM()).answer_without_rag("red?")
    assert without.grounding.unknown_products == ("Widget Pro",)
    assert without.grounding.not_retrieved == ("Gadget Z",)
    assert without.to_dict()["grounding"]["ok"] is False


def test_compare_with_the_course_cascade_pins_the_provider_that_answered(
    clean_llm_env, llm_server, monkeypatch, tiny_index, tiny_embedder
):
    """The scenario above, on the wire with the course's own cascade: Gemini answers 429 once and
    recovers, OpenAI answers the RAG question, and the blind call goes to OpenAI with OpenAI's model."""
    from llm_servers import use

    from course_utils.llm import get_cascade

    gemini = llm_server("gemini", text="from Gemini").at(1, "status", status=429, retry_after=30)
    openai = llm_server("openai", text="from OpenAI")
    use(monkeypatch, "gemini", gemini)
    use(monkeypatch, "openai", openai)
    monkeypatch.setenv("COURSE_LLM_PROVIDERS", "gemini,openai,offline")
    with_rag, without = ImageRAG(tiny_index, tiny_embedder, get_cascade(verbose=False)).compare(
        "Which products are red?"
    )
    assert (with_rag.provider, with_rag.model) == ("OpenAI", "gpt-4o-mini")  # Gemini was rate limited: no wait
    assert (without.provider, without.model, without.answer) == ("OpenAI", "gpt-4o-mini", "from OpenAI")
    assert len(gemini.chat_requests) == 1 and [r.body["model"] for r in openai.chat_requests] == ["gpt-4o-mini"] * 2
    assert without.note == ""


# --------------------------------------------------------------------------- asking with a photo


def test_a_photo_goes_first_labelled_as_the_shoppers_then_the_catalog_images(tiny_index, tiny_embedder):
    from course_utils.prompts import SHOPPER_PHOTO

    llm = RecordingLLM()
    photo = tiny_index.paths[4]
    result = ImageRAG(tiny_index, tiny_embedder, llm).answer("Do you have something like this?", k=3, image=photo)
    kind, prompt, images, _, _ = llm.calls[0]
    assert kind == "multimodal" and images[0] == photo and images[1:] == [h.path for h in result.hits]
    assert len(images) == 4 and result.images_sent == 4 and SHOPPER_PHOTO in prompt
    assert "image 2 is entry [1]" in prompt and "image 1 is entry [1]" not in prompt
    assert prompt.index(SHOPPER_PHOTO) < prompt.index(CONTEXT_OPEN)
    assert result.query_image == str(photo) and result.to_dict()["query_image"] == str(photo)
    assert result.hits[0].exact and result.hits[0].path == photo  # retrieved with the picture
    assert result.plan == "image"


def test_a_photo_without_words_asks_if_the_shop_has_something_like_it(tiny_index, tiny_embedder):
    from course_utils.rag import PHOTO_QUESTION

    result = ImageRAG(tiny_index, tiny_embedder).answer("", image=tiny_index.paths[2])
    assert result.question == PHOTO_QUESTION and result.provider == "offline"
    assert f"most like your photo is {tiny_index.products[2].name}" in result.answer
    assert result.grounding.ok


def test_words_that_name_a_look_join_the_photo_and_filler_does_not(tiny_index, tiny_embedder):
    rag = ImageRAG(tiny_index, tiny_embedder)
    photo = tiny_index.paths[0]
    assert rag.retrieve("Do you have this in blue?", image=photo).plan == "image + words"
    assert rag.retrieve("Do you have something like this?", image=photo).plan == "image"
    cheap = rag.retrieve("Anything like this under $15?", image=photo, k=8)
    assert cheap.plan.startswith("hybrid") and all(h.product.price <= 15 for h in cheap)


class PhotoLLM(RecordingLLM):
    """Records multimodal calls with their pins (a blind answer about a photo is multimodal too)."""

    def generate_multimodal(self, prompt, images, system_prompt=None, provider=None, model=None):
        self.calls.append(("multimodal", prompt, list(images), system_prompt, (provider, model)))
        return LLMResponse("an answer", "Fake", "fake-1")


def test_without_rag_the_photo_still_goes_but_no_catalog(tiny_index, tiny_embedder):
    llm = PhotoLLM()
    with_rag, without = ImageRAG(tiny_index, tiny_embedder, llm).compare("", k=2, image=tiny_index.paths[1])
    _, prompt, images, _, pins = llm.calls[-1]
    assert images == [tiny_index.paths[1]] and CONTEXT_OPEN not in prompt and "shopper's own photo" in prompt
    assert pins == ("Fake", "fake-1") and llm.calls[0][4] == (None, None)  # pinned to what answered with RAG
    assert without.used_rag is False and without.query_image == str(tiny_index.paths[1])


def test_an_uploaded_photo_goes_to_the_llm_as_bytes(tiny_index, tiny_embedder):
    llm = RecordingLLM()
    data = Path(tiny_index.paths[3]).read_bytes()
    result = ImageRAG(tiny_index, tiny_embedder, llm).answer("like this?", image=memoryview(data), image_name="me.png")
    assert llm.calls[0][2][0] == data and type(llm.calls[0][2][0]) is bytes
    assert result.query_image == "me.png" and result.hits[0].exact


def test_the_photo_takes_one_of_the_images_an_llm_accepts(tiny_index, tiny_embedder):
    llm = RecordingLLM()
    llm.max_images = 3
    result = ImageRAG(tiny_index, tiny_embedder, llm).answer("like this?", k=4, image=tiny_index.paths[0])
    images = llm.calls[0][2]
    assert len(images) == 3 and images[0] == tiny_index.paths[0] and len(result.hits) == 4
    assert "the first 2 were sent" in result.note


def test_a_bad_photo_never_reaches_the_model(tiny_index, tiny_embedder):
    llm = RecordingLLM()
    rag = ImageRAG(tiny_index, tiny_embedder, llm)
    for call in (rag.answer, rag.answer_without_rag):
        with pytest.raises(CourseError, match="not an image"):
            call("like this?", image=b"GIF? no")
    assert llm.calls == []
