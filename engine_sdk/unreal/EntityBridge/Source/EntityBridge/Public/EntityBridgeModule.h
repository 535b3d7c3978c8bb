#pragma once

#include "Modules/ModuleManager.h"

class FEntityBridgeModule : public IModuleInterface
{
public:
	virtual void StartupModule() override;
	virtual void ShutdownModule() override {}
};
