// The client's cross_origin_loc page: hands login_site the co_verifier the widget kept.
LoginSiteLock.crossOriginVerification();
