"""One entity per module; importing this package registers every table."""
from models import credit, redemption
from models.api_key import ApiKey
from models.credit import CreditTransaction, Reservation
from models.redemption import RedemptionCode
from models.request_log import RequestLog
from models.user import User

__all__ = ["ApiKey", "CreditTransaction", "RedemptionCode", "RequestLog", "Reservation", "User", "credit", "redemption"]
