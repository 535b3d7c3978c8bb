#include "EntityBridgeModule.h"

#include "Modules/ModuleManager.h"

void FEntityBridgeModule::StartupModule()
{
	// IWebSocket needs its module loaded before the first CreateWebSocket.
	FModuleManager::Get().LoadModuleChecked(TEXT("WebSockets"));
}

IMPLEMENT_MODULE(FEntityBridgeModule, EntityBridge)
