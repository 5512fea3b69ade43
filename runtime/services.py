"""The Services container and the one lifespan that opens everything in order and closes
it in reverse: embedded servers (when no URL is set), migrations, the PostgreSQL pool,
Redis, the persona cache and store, the embedder, the vector index, the turn graph."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph.state import CompiledStateGraph
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from agents.decoding import CAPABLE
from agents.director import Director
from agents.fact_extractor import LlmExtractor
from agents.judges import LLMImportance, LLMTraitJudge
from agents.llm import LOCAL, LLMSpec, is_local, make_chat_model, profile_for
from agents.summarizer import LlmSummarizer
from agents.tracker import TrackerSettings, TraitTracker
from agents.traits import PrototypeScorer
from agents.turn import build_graph
from agents.types import AgentServices, TurnConfig
from memory import (
    EdgeMemoryIndex,
    Embedder,
    ScoringWeights,
    ServerMemoryIndex,
    VectorIndex,
)
from memory.consolidation import Consolidator, Extractor, LocalExtractor
from memory.record.analytics import Analytics
from memory.record.facts import FactStore
from memory.record.feedback import FeedbackStore
from memory.record.summaries import SummaryStore
from memory.record.transcripts import Transcripts
from memory.service import MemoryService
from memory.summaries import LocalSummarizer, SessionSummarizer, Summarizer
from memory.vector.onnx_embedder import make_embedder
from memory.vector.remote import RemoteIndex
from personas import PersonaCache, PersonaRepository, PersonaStore
from personas.card_store import CardStore
from runtime.infra.catalog import PersonaCatalog
from runtime.infra.db import open_pool, open_redis
from runtime.infra.embedded import EmbeddedPostgres, EmbeddedRedis
from runtime.infra.migrate import migrate_url
from runtime.infra.private import private_folder
from runtime.infra.store_share import check_store_free
from runtime.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Core:
    """The databases and the persona store: what persona commands need."""

    settings: Settings
    database_url: str
    redis_url: str
    pool: AsyncConnectionPool[Any]
    redis: Redis
    personas: PersonaStore


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a request or a turn needs, built once per process and passed down."""

    settings: Settings
    database_url: str
    redis_url: str
    pool: AsyncConnectionPool[Any]
    redis: Redis
    personas: PersonaStore
    memory: MemoryService
    agents: AgentServices
    graph: CompiledStateGraph[Any, Any, Any, Any]
    director: Director
    catalog: PersonaCatalog
    feedback: FeedbackStore
    analytics: Analytics
    facts: FactStore
    consolidator: Consolidator
    summaries: SummaryStore
    summarizer: SessionSummarizer


@dataclass(frozen=True, slots=True)
class Overrides:
    """Replacements for the heavy parts, for tests and benchmarks: an embedder (opened
    by the lifespan) and a chat model factory."""

    embedder: Embedder | None = None
    chat_model: Callable[[], BaseChatModel] | None = None
    trait_scorer: bool = True


@asynccontextmanager
async def resolved_urls(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """The database and Redis URLs to use, starting embedded servers for unset ones."""
    async with AsyncExitStack() as stack:
        database_url = settings.database_url
        if database_url is None:
            pg = await stack.enter_async_context(EmbeddedPostgres(settings.home / "pg"))
            database_url = pg.url
            log.info("using embedded PostgreSQL under %s", settings.home / "pg")
        redis_url = settings.redis_url
        if redis_url is None:
            rd = await stack.enter_async_context(EmbeddedRedis(settings.home))
            redis_url = rd.url
            log.info("using embedded Redis under %s", settings.home)
        yield database_url, redis_url


def scoring_weights(settings: Settings) -> ScoringWeights:
    return ScoringWeights(
        relevance=settings.memory_weight_relevance,
        keyword=settings.memory_weight_keyword,
        speaker=settings.memory_weight_speaker,
        recency=settings.memory_weight_recency,
        importance=settings.memory_weight_importance,
        half_life_hours=settings.memory_half_life_hours,
    )


def embedder_for(settings: Settings) -> Embedder:
    """The embedding model the settings choose (ONNX Runtime by default), not yet open."""
    return make_embedder(
        settings.embedding_model,
        backend=settings.embedding_backend,
        cache_dir=settings.embedding_cache_dir or settings.home / "models",
        threads=settings.embedding_threads,
        precision=settings.embedding_precision,
        cache_size=settings.embedding_cache_size,
    )


def vector_index(settings: Settings, dim: int) -> VectorIndex:
    """Qdrant Edge under ``$PERSONAE_HOME/qdrant``, or the Qdrant server at the URL, or
    (in a worker process) the index the supervisor shares on its Unix socket."""
    if settings.index_socket is not None:
        return RemoteIndex(settings.index_socket, dim=dim)
    weights = scoring_weights(settings)
    if settings.qdrant_url:
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return ServerMemoryIndex(settings.qdrant_url, dim=dim, api_key=key, weights=weights)
    check_store_free(settings, settings.home / "qdrant")  # held elsewhere: say so at once
    return EdgeMemoryIndex(
        settings.home / "qdrant",
        dim=dim,
        weights=weights,
        records_cached=settings.memory_records_cached,
    )


@asynccontextmanager
async def open_core(settings: Settings, *, migrate: bool = True) -> AsyncIterator[Core]:
    """Open the databases (embedded when no URL is set, migrated) and the persona store."""
    private_folder(settings.home)
    async with AsyncExitStack() as stack:
        database_url, redis_url = await stack.enter_async_context(resolved_urls(settings))
        if migrate:
            applied = await migrate_url(database_url)
            if applied:
                log.info("applied %d migration(s)", len(applied))
        pool = await stack.enter_async_context(open_pool(database_url, settings))
        redis = await stack.enter_async_context(open_redis(redis_url))
        cache = await stack.enter_async_context(
            PersonaCache(
                redis,
                ttl_s=settings.persona_cache_ttl_s,
                l1_ttl_s=settings.persona_l1_ttl_s,
                namespace=settings.redis_prefix,
            )
        )
        yield Core(
            settings,
            database_url,
            redis_url,
            pool,
            redis,
            PersonaStore(PersonaRepository(pool), cache),
        )


@asynccontextmanager
async def open_services(
    settings: Settings, *, migrate: bool = True, overrides: Overrides | None = None
) -> AsyncIterator[Services]:
    """Open every service for ``settings``; close them in reverse on exit."""
    overrides = overrides or Overrides()
    async with AsyncExitStack() as stack:
        core = await stack.enter_async_context(open_core(settings, migrate=migrate))
        embedder: Embedder = await stack.enter_async_context(
            overrides.embedder or embedder_for(settings)
        )
        index = await stack.enter_async_context(vector_index(settings, embedder.dim))
        chat_model = overrides.chat_model or _shared_model(settings)
        # the embedded 135M model is too weak to judge; a configured provider is asked
        capable = not is_local(settings.llm) and settings.llm_judges
        facts = FactStore(core.pool)
        summaries = SummaryStore(core.pool)
        memory = MemoryService(
            index,
            embedder,
            Transcripts(core.pool),
            weights=scoring_weights(settings),
            importance=LLMImportance(chat_model) if capable else None,
            facts=facts,
            summaries=summaries,
        )
        scorer = (
            await PrototypeScorer.create(partial(embedder.embed, purpose="trait"))
            if overrides.trait_scorer
            else None
        )
        tracker = await stack.enter_async_context(
            TraitTracker(
                core.pool, core.personas, TrackerSettings(drift_threshold=settings.drift_threshold)
            )
        )
        agents = AgentServices(
            personas=core.personas,
            memory=memory,
            tracker=tracker,
            chat_model=chat_model,
            llm_name=settings.llm,
            scorer=scorer,
            judge=LLMTraitJudge(chat_model) if capable else None,
            cards=CardStore(core.pool, ttl_s=settings.persona_l1_ttl_s),
            facts=facts,
            config=TurnConfig(
                memory_k=settings.memory_k,
                transcript_lines=settings.transcript_lines,
                # the embedded model has a 2,048-token window shared with its reply
                budget_tokens=(
                    min(settings.prompt_budget_tokens, 1024)
                    if settings.llm == "local" and overrides.chat_model is None
                    else settings.prompt_budget_tokens
                ),
                llm_timeout_s=settings.llm_timeout_s,
                # prompts and decoding fitted to the model (its size, its options)
                model=profile_for(settings.llm) if overrides.chat_model is None else CAPABLE,
            ),
        )
        graph = build_graph()
        memory_model = _memory_model(settings)
        yield Services(
            settings=settings,
            database_url=core.database_url,
            redis_url=core.redis_url,
            pool=core.pool,
            redis=core.redis,
            personas=core.personas,
            memory=memory,
            agents=agents,
            graph=graph,
            director=Director(agents, graph),
            catalog=PersonaCatalog(core.personas, index, embedder),
            feedback=FeedbackStore(core.pool),
            analytics=Analytics(core.pool),
            facts=facts,
            consolidator=Consolidator(
                facts, memory, fact_extractor(settings, memory_model), summaries=summaries
            ),
            summaries=summaries,
            summarizer=SessionSummarizer(
                summaries,
                memory,
                session_summarizer(settings, memory_model),
                facts=facts,
                quiet_s=settings.summary_quiet_s,
            ),
        )


def fact_extractor(
    settings: Settings, model: Callable[[], BaseChatModel] | None = None
) -> Extractor:
    """The extractor that turns queued user messages into facts: a language model when
    ``PERSONAE_MEMORY_LLM`` names one, else the rule-based local extractor (the embedded
    135M model cannot extract reliably)."""
    if not settings.memory_llm:
        return LocalExtractor()
    return LlmExtractor(model or _memory_model(settings))


def session_summarizer(
    settings: Settings, model: Callable[[], BaseChatModel] | None = None
) -> Summarizer:
    """Who writes session summaries: the model of ``PERSONAE_MEMORY_LLM`` when one is
    named, else the extractive local summary (the embedded 135M model invents and
    repeats what it is shown, so it writes none, even when named)."""
    if not settings.memory_llm or settings.memory_llm == LOCAL:
        return LocalSummarizer()
    return LlmSummarizer(model or _memory_model(settings))


def _memory_model(settings: Settings) -> Callable[[], BaseChatModel]:
    """The model of ``PERSONAE_MEMORY_LLM``, built on first use (one for the extractor
    and the summarizer)."""
    spec = LLMSpec(
        model=settings.memory_llm or settings.llm,
        base_url=settings.llm_base_url,
        timeout_s=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries,
    )
    model: BaseChatModel | None = None

    def get() -> BaseChatModel:
        nonlocal model
        if model is None:
            model = make_chat_model(spec)
        return model

    return get


@asynccontextmanager
async def consolidating(services: Services) -> AsyncIterator[asyncio.Task[None]]:
    """Consolidate queued user messages into facts in the background while open (the
    server and the in-process chat); the queue is durable, so whatever is left when it
    closes is done at the next start."""
    work = services.consolidator.run_forever(idle_s=services.settings.memory_consolidation_idle_s)
    async with _in_background(work, "personae-consolidation") as task:
        yield task


@asynccontextmanager
async def summarizing(services: Services) -> AsyncIterator[asyncio.Task[None]]:
    """Summarise sessions that went quiet or ended, in the background while open (beside
    :func:`consolidating`); what is due is derived from the transcripts, so nothing is
    lost when it closes."""
    work = services.summarizer.run_forever(idle_s=SUMMARY_IDLE_S)
    async with _in_background(work, "personae-summaries") as task:
        yield task


@asynccontextmanager
async def _in_background(
    work: Coroutine[Any, Any, None], name: str
) -> AsyncIterator[asyncio.Task[None]]:
    """``work`` as a task while open, cancelled and awaited on leaving."""
    task = asyncio.create_task(work, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


SUMMARY_IDLE_S = 30.0
"""How often an idle summary worker looks for sessions that went quiet or ended."""


def _shared_model(settings: Settings) -> Callable[[], BaseChatModel]:
    """One chat model per process, built on first use (so start-up never waits on it)."""
    model: BaseChatModel | None = None
    spec = LLMSpec(
        model=settings.llm,
        base_url=settings.llm_base_url,
        timeout_s=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries,
    )

    def get() -> BaseChatModel:
        nonlocal model
        if model is None:
            model = make_chat_model(spec)
        return model

    return get
