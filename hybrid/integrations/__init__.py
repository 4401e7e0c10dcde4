"""Adapters for RAG frameworks, each imported lazily from its own module.

- `hybrid.integrations.langchain`: a LangChain ``VectorStore`` (extra ``langchain``).
- `hybrid.integrations.llamaindex`: a LlamaIndex vector store (extra ``llamaindex``).
"""
