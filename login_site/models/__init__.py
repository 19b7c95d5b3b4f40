"""One module per aggregate; importing this package registers every table on ``Base``."""

from login_site.models.client import Client
from login_site.models.connection import Connection
from login_site.models.connection import ConnectionClient
from login_site.models.event import SecurityEvent as SecurityEvent
from login_site.models.grant import AccessToken
from login_site.models.grant import AuthorizationCode
from login_site.models.grant import Consent
from login_site.models.grant import CrossOriginTicket
from login_site.models.grant import LoginSession
from login_site.models.grant import LoginTransaction
from login_site.models.grant import RefreshToken
from login_site.models.job import Job
from login_site.models.key import SigningKey
from login_site.models.passwordless import PasswordlessCode
from login_site.models.passwordless import PasswordlessIdentity
from login_site.models.resource_server import ClientGrant
from login_site.models.resource_server import ResourceServer
from login_site.models.security import LoginAttempt
from login_site.models.security import MailOutbox
from login_site.models.security import RateCounter
from login_site.models.security import UserTicket
from login_site.models.tenant import Tenant
from login_site.models.tenant import TenantHost
from login_site.models.upstream import TenantDataKey
from login_site.models.upstream import UpstreamMetadata
from login_site.models.upstream import UpstreamToken
from login_site.models.user import DatabaseCredential
from login_site.models.user import Identity
from login_site.models.user import PasswordHistory
from login_site.models.user import User

__all__ = [
    "AccessToken",
    "AuthorizationCode",
    "Client",
    "ClientGrant",
    "Connection",
    "ConnectionClient",
    "Consent",
    "CrossOriginTicket",
    "DatabaseCredential",
    "Identity",
    "Job",
    "LoginAttempt",
    "LoginSession",
    "MailOutbox",
    "PasswordHistory",
    "PasswordlessCode",
    "PasswordlessIdentity",
    "RateCounter",
    "LoginTransaction",
    "RefreshToken",
    "ResourceServer",
    "SigningKey",
    "Tenant",
    "TenantDataKey",
    "TenantHost",
    "UpstreamMetadata",
    "UpstreamToken",
    "User",
    "UserTicket",
]
