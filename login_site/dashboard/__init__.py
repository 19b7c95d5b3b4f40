"""The admin dashboard: HTML pages over the same services as the Management API.

Admins are users of the admin tenant (tenant setting ``admin: true``) whose
``app_metadata.roles`` holds ``"admin"``; they sign in through that tenant's own hosted
login with its built-in ``Dashboard`` client (docs/dashboard.md).
"""
