"""Request and response bodies of the auth and users endpoints (docs/api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt

# Role is re-exported: the API and other modules name it here, not in models.
from opsdeck.accounts.models import Role as Role
from opsdeck.accounts.policy import clean_display_name, normalise_email, normalise_username
from opsdeck.core.pagination import Page
from opsdeck.core.params import Trimmed

Username = Annotated[str, Field(max_length=200), AfterValidator(normalise_username)]
Email = Annotated[str, Field(max_length=254), AfterValidator(normalise_email)]
DisplayName = Annotated[
    str, Field(max_length=100), AfterValidator(str.strip), AfterValidator(clean_display_name)
]
# Policy (8 to 128 characters, not common) is the service's job, so the CLI gets it too and
# the answer is `weak_password`; this bound only keeps absurd bodies away from the hasher.
NewPassword = Annotated[str, Field(max_length=1024)]
SubmittedPassword = Annotated[str, Field(min_length=1, max_length=1024)]
OtpCode = Annotated[str, Field(min_length=1, max_length=64), Trimmed]


class Input(BaseModel):
    # An unknown field is a typo or a privilege probe (`role` on /users/me); say so.
    model_config = ConfigDict(extra="forbid")


# -- users ---------------------------------------------------------------------------------


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    username: str
    email: str
    display_name: str
    role: Role
    is_active: bool
    totp_enabled: bool
    created_at: datetime


class UserPage(Page[UserOut]):
    pass


class DirectoryUser(BaseModel):
    """What anyone signed in may read of another account: no e-mail, role or security state."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    username: str
    display_name: str


class DirectoryPage(Page[DirectoryUser]):
    pass


class UserCreate(Input):
    username: Username
    email: Email
    password: NewPassword
    display_name: DisplayName = ""
    role: Role = Role.MEMBER


class UserAdminUpdate(Input):
    role: Role | None = None
    # Strict: `0`, `"false"` or `"no"` are refused, not read as false (a typo or a fuzzer's
    # guess must not deactivate anybody).
    is_active: StrictBool | None = None
    display_name: DisplayName | None = None


class UserSelfUpdate(Input):
    display_name: DisplayName | None = None
    email: Email | None = None


class PasswordChange(Input):
    current_password: SubmittedPassword
    new_password: NewPassword


# -- sign-in -------------------------------------------------------------------------------


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type name
    expires_in: int = Field(description="Seconds the access token is valid for.")
    refresh_token: str
    refresh_expires_in: int = Field(description="Seconds the refresh token is valid for.")


class RefreshIn(Input):
    refresh_token: Annotated[str, Field(min_length=1, max_length=256)]


class LogoutIn(Input):
    refresh_token: Annotated[str, Field(min_length=1, max_length=256)] | None = None


class SessionLogin(Input):
    username: Annotated[str, Field(min_length=1, max_length=254)]
    password: SubmittedPassword
    otp: OtpCode | None = None


class SessionOut(BaseModel):
    user: UserOut
    csrf_token: str
    expires_at: datetime


# -- two-factor authentication -------------------------------------------------------------


class TotpSetupIn(Input):
    password: SubmittedPassword


class TotpSetupOut(BaseModel):
    secret: str
    provisioning_uri: str


class TotpConfirmIn(Input):
    code: OtpCode


class PasswordAndCode(Input):
    password: SubmittedPassword
    code: OtpCode = Field(description="A current TOTP code or an unused recovery code.")


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(description="Shown once; each works one time.")


# -- personal API tokens -------------------------------------------------------------------


class ApiTokenCreate(Input):
    name: Annotated[str, Field(min_length=1, max_length=100), Trimmed]
    # Strict: `true` is not a number of days (pydantic would read it as 1).
    expires_in_days: Annotated[StrictInt, Field(ge=1, le=3650)] | None = None


class ApiTokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    token_prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiTokenCreated(ApiTokenOut):
    token: str = Field(description="The secret; shown only in this response.")
