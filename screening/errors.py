"""Named errors that services raise and views catch by name."""


class DraftNotFound(Exception):
    """No draft matches the client's token, or it has expired."""


class IncompleteDraft(Exception):
    """The draft is missing answers; ``page_id`` is the first page that needs them."""

    def __init__(self, page_id: str, missing: list[str]):
        self.page_id = page_id
        self.missing = missing
        super().__init__(f"missing answers on page {page_id}: {', '.join(missing)}")


class NotSigned(Exception):
    """The declaration has not been signed."""


class SubmissionNotFound(Exception):
    """No submission has that reference."""


class SaveFailed(Exception):
    """The database could not store the submission; the draft is intact.

    ``reference`` is the reference the failed commit tried, when there was one: a commit that reports an
    error may still have been stored by the server.
    """

    def __init__(self, reference: str | None = None):
        self.reference = reference
        super().__init__("the submission could not be stored")
