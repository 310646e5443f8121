"""One entity per module; importing this package registers every table."""
from models import activity_log, credit, login_session, redemption, stored_response
from models.activity_log import ActivityLog
from models.api_key import ApiKey
from models.conversation import ChatMessage, Conversation  # noqa: F401  (web chat history)
from models.credit import CreditTransaction, Reservation
from models.provider_key import UserProviderKey
from models.redemption import RedemptionCode
from models.request_log import RequestLog
from models.stored_response import StoredResponse
from models.user import User

__all__ = ["ActivityLog", "ApiKey", "CreditTransaction", "RedemptionCode", "RequestLog", "Reservation", "StoredResponse",
           "User", "UserProviderKey", "activity_log", "credit", "login_session", "redemption", "stored_response"]
