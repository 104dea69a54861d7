// Precompiled header of every torch translation unit (sx_model, the app, the model tests).
#pragma once
#include <torch/torch.h>
