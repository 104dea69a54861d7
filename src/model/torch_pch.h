// Precompiled header shared by every torch target (see cmake/TorchCompat.cmake).
#pragma once
#include <torch/torch.h>
