// FString <-> UTF-8 std::string, the core's string type.
#pragma once

#include "CoreMinimal.h"

#include <string>

namespace EntityBridge
{
inline std::string Utf8(const FString& S)
{
	FTCHARToUTF8 Converted(*S);
	return std::string(Converted.Get(), Converted.Length());
}

inline FString FromUtf8(const std::string& S)
{
	return FString(UTF8_TO_TCHAR(S.c_str()));
}
} // namespace EntityBridge
