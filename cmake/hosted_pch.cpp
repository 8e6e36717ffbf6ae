// Compiles the hosted programs' shared precompiled header (cmake/KhoHosted.cmake).
