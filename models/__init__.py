"""One entity per module; importing this package registers every table."""
from models import credit
from models.api_key import ApiKey
from models.credit import CreditTransaction, Reservation
from models.request_log import RequestLog
from models.user import User

__all__ = ["ApiKey", "CreditTransaction", "RequestLog", "Reservation", "User", "credit"]
