"""Accounts logic: users, sign-in and sessions, two-factor authentication, personal API tokens
and clean-up. No HTTP here and no commits: the request or task boundary commits. A refused
request raises an `AppError`; what it must leave behind (a failed sign-in's audit entry) is
kept with `opsdeck.core.db.keep_on_refusal`.

Other modules import this package, never its modules: what they may use is re-exported here.
"""

from opsdeck.accounts.service.api_tokens import (
    API_TOKEN_DISPLAY_LENGTH,
    API_TOKEN_PREFIX,
    NewApiToken,
    create_api_token,
    list_api_tokens,
    revoke_api_token,
)
from opsdeck.accounts.service.maintenance import PurgeCounts, purge_expired
from opsdeck.accounts.service.sign_in import (
    LOGIN_FAILED_MESSAGE,
    AuthMethod,
    BrowserLogin,
    IssuedTokens,
    LoginChannel,
    Principal,
    authenticate,
    authenticate_bearer,
    authenticate_cookie,
    csrf_token,
    end_session,
    end_session_of_refresh_token,
    refresh_session,
    replace_browser_session,
    start_api_session,
    start_browser_session,
)
from opsdeck.accounts.service.two_factor import (
    OTP_INVALID_MESSAGE,
    OTP_REQUIRED_MESSAGE,
    TotpSetup,
    begin_totp_setup,
    confirm_totp,
    disable_totp,
    regenerate_recovery_codes,
)
from opsdeck.accounts.service.users import (
    MAX_DISPLAY_NAME_LENGTH,
    USER_SORTS,
    UserQuery,
    change_password,
    check_password,
    create_user,
    first_active_admin,
    get_active_user_by_username,
    get_user,
    list_users,
    update_profile,
    update_user,
)

__all__ = [
    "API_TOKEN_DISPLAY_LENGTH",
    "API_TOKEN_PREFIX",
    "LOGIN_FAILED_MESSAGE",
    "MAX_DISPLAY_NAME_LENGTH",
    "OTP_INVALID_MESSAGE",
    "OTP_REQUIRED_MESSAGE",
    "USER_SORTS",
    "AuthMethod",
    "BrowserLogin",
    "IssuedTokens",
    "LoginChannel",
    "NewApiToken",
    "Principal",
    "PurgeCounts",
    "TotpSetup",
    "UserQuery",
    "authenticate",
    "authenticate_bearer",
    "authenticate_cookie",
    "begin_totp_setup",
    "change_password",
    "check_password",
    "confirm_totp",
    "create_api_token",
    "create_user",
    "csrf_token",
    "disable_totp",
    "end_session",
    "end_session_of_refresh_token",
    "first_active_admin",
    "get_active_user_by_username",
    "get_user",
    "list_api_tokens",
    "list_users",
    "purge_expired",
    "refresh_session",
    "regenerate_recovery_codes",
    "replace_browser_session",
    "revoke_api_token",
    "start_api_session",
    "start_browser_session",
    "update_profile",
    "update_user",
]
