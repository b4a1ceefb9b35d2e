"""The browser-login routes under ``oidc.prefix`` (/oauth2/*): start, callback, sign-out, userinfo,
back-channel.
"""
