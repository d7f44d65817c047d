import Testing // placeholder until the first tests land
