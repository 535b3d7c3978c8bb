// A procedural sound wave that plays an entity's speech: the audio thread pulls float
// samples straight from the core's lock-free eb::SpeechBuffer (silence on underrun).
#pragma once

#include "CoreMinimal.h"
#include "HAL/CriticalSection.h"
#include "Sound/SoundWaveProcedural.h"

#include <memory>

#include "BridgeSpeechSoundWave.generated.h"

namespace eb { class SpeechBuffer; }

UCLASS()
class ENTITYBRIDGE_API UBridgeSpeechSoundWave : public USoundWaveProcedural
{
	GENERATED_BODY()

public:
	// Game thread, before playing: the buffer's output rate becomes the wave's sample rate.
	void SetBuffer(std::shared_ptr<eb::SpeechBuffer> InBuffer);

	// Audio thread.
	virtual int32 OnGeneratePCMAudio(TArray<uint8>& OutAudio, int32 NumSamples) override;
	virtual Audio::EAudioMixerStreamDataFormat::Type GetGeneratedPCMDataFormat() const override
	{
		return Audio::EAudioMixerStreamDataFormat::Float;
	}

private:
	// Shared with the component. The lock is only contended when the buffer is set or
	// cleared (BeginPlay / EndPlay); the samples themselves pass through the lock-free ring.
	FCriticalSection BufferLock;
	std::shared_ptr<eb::SpeechBuffer> Buffer;
};
